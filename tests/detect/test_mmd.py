"""Topic MMD: an account's prompts against the benign reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.detect import Calibrated
from distillguard.detect.knn import KNNNoveltyScorer
from distillguard.features.topic_distance import reference_center, topic_statistics, with_topic_statistics
from distillguard.signals.topic import topic_simhash_many

BENIGN = [
    "What should I cook for dinner tonight with chicken and rice",
    "Help me plan a weekend trip to Lisbon on a budget",
    "Summarize the causes of the French revolution",
    "Draft a polite email declining a meeting invitation",
    "Why does my sourdough bread come out flat",
    "Recommend some science fiction novels similar to Dune",
    "Explain how vaccines train the immune system",
    "Give me a beginner workout routine for three days a week",
]
SWEEP = [f"Prove that the sum of the first {n} odd integers equals a perfect square, showing every algebraic step"
         for n in range(10, 40)]


def _account(prompts: list[str]) -> dict[str, object]:
    """An account_features row from prompts (what the features stage computes from topic_simhash)."""
    h = topic_simhash_many(prompts).astype(np.uint64)
    bits = [(h >> np.uint64(b) & np.uint64(1)).mean() for b in range(64)]
    return {"n_exchanges": len(prompts), "topic_bits": [float(b) for b in bits]}


def _reference(rng: np.random.Generator, accounts: int = 40) -> pa.Table:
    return pa.Table.from_pylist([_account(list(rng.choice(BENIGN, size=6))) for _ in range(accounts)])


def test_a_one_topic_sweep_is_far_from_benign_traffic() -> None:
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    center = reference_center(ref)
    accounts = pa.Table.from_pylist([_account(list(rng.choice(BENIGN, size=30))), _account(SWEEP)])
    mmd, cohesion = topic_statistics(accounts, center)
    assert mmd[1] > 5 * max(mmd[0], 0.01)
    assert cohesion[1] > cohesion[0]


def test_the_statistic_is_unbiased_for_benign_accounts() -> None:
    """Benign accounts drawn from the reference mix score about zero whatever their size."""
    rng = np.random.default_rng(1)
    center = reference_center(_reference(rng, 200))
    small = [_account(list(rng.choice(BENIGN, size=3))) for _ in range(300)]
    large = [_account(list(rng.choice(BENIGN, size=60))) for _ in range(100)]
    for rows in (small, large):
        mmd, _ = topic_statistics(pa.Table.from_pylist(rows), center)
        assert abs(float(np.mean(mmd))) < 0.02


def test_single_prompt_accounts_get_no_statistic() -> None:
    mmd, cohesion = topic_statistics(pa.Table.from_pylist([_account(["hello there friend"])]), np.zeros(64))
    assert np.isnan(mmd[0]) and np.isnan(cohesion[0])


def test_tables_without_topic_bits_pass_through() -> None:
    t = pa.table({"n_exchanges": [1, 2]})
    assert with_topic_statistics(t, np.zeros(64)) is t


def test_calibrated_scores_with_the_reference_center() -> None:
    rng = np.random.default_rng(2)
    ref = _reference(rng, 60)
    det = Calibrated(KNNNoveltyScorer(k=2, features=("topic_mmd",)), target_fpr=0.02, conformal=True).fit(ref)
    scanned = pa.Table.from_pylist([_account(list(rng.choice(BENIGN, size=6))), _account(SWEEP)])
    flags = det.flag(scanned)
    assert flags.tolist() == [False, True]
    assert any("prompt topics far from benign traffic" in r for r in det.explain(scanned)[1])
