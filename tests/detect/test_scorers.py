"""One conformance suite over every registered scorer, plus the calibration rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from distillguard.detect import Calibrated, Scorer, make_scorer, registered_scorers
from distillguard.detect.base import Slices
from distillguard.detect.knn import KNNNoveltyScorer
from distillguard.errors import ConfigError
from distillguard.pipeline import prepare
from distillguard.sim import generate, load_scenario
from distillguard.store import Store


@pytest.fixture(scope="module")
def features(small_traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, np.ndarray, pa.Table]:
    """Features of the small traffic, its attack labels, and a benign reference's features."""
    work = tmp_path_factory.mktemp("scorers")
    generate(load_scenario("demo").scaled(0.1).benign_only(), work / "ref", seed=99, fmt="jsonl")
    with Store.open(work / "s.duckdb") as s:
        feats = prepare(small_traffic, s, link=False).features
    with Store.open(work / "r.duckdb") as s:
        ref = prepare(work / "ref", s, link=False).features
    labels = {json.loads(x)["account_id"]: json.loads(x)["is_attack"]
              for x in (small_traffic / "labels.jsonl").read_text().splitlines()}
    y = np.array([labels[a] for a in feats.column("account_id").to_pylist()])
    return feats, y, ref


SCORERS = registered_scorers()


def test_registry_finds_the_scorers() -> None:
    assert {cls.name for cls in SCORERS} >= {"robust-z", "knn-novelty"}


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.name)
def test_scorer_contract(cls: type[Scorer], features: tuple[pa.Table, np.ndarray, pa.Table]) -> None:
    feats, y, ref = features
    scorer = cls()
    assert scorer.fit(ref) is scorer
    scores = scorer.suspicion(feats)
    assert scores.shape == (feats.num_rows,) and np.isfinite(scores).all()
    assert np.array_equal(scores, cls().fit(ref).suspicion(feats))  # deterministic
    assert np.array_equal(scorer.score_samples(feats), -scores)  # scikit-learn's sign
    assert roc_auc_score(y, scores) > 0.8  # well above chance on a small simulation
    reasons = scorer.explain(feats)
    assert len(reasons) == feats.num_rows and all(isinstance(r, list) for r in reasons)
    assert any(reasons[i] for i in np.flatnonzero(y))  # attackers get reasons


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.name)
def test_calibrated_flag_rate_on_the_reference(
    cls: type[Scorer], features: tuple[pa.Table, np.ndarray, pa.Table]
) -> None:
    _, _, ref = features
    det = Calibrated(cls(), target_fpr=0.1).fit(ref)
    assert det.flag(ref).mean() <= 0.1 + 1 / ref.num_rows


def test_knn_calibration_leaves_each_reference_row_out() -> None:
    ref = pa.table({"n_exchanges": [10.0, 11, 12, 13, 14, 15, 16, 17]})
    scorer = KNNNoveltyScorer(k=1, features=("n_exchanges",)).fit(ref)
    assert np.all(scorer.suspicion(ref) == 0)  # each row is its own nearest neighbour
    assert np.all(scorer.reference_suspicion(ref) > 0)  # left out: honest distances


def test_make_scorer_rules() -> None:
    assert make_scorer("auto", has_reference=True).name == "knn-novelty"
    assert make_scorer("auto", has_reference=False).name == "robust-z"
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_scorer("magic", has_reference=False)



DAY = 86400


def _accounts(ids: list[str], volume: list[float], regularity: list[float], days: list[float]) -> pa.Table:
    """Account features with a first day of traffic (day 100) and a span of ``days``."""
    start = datetime(2026, 4, 10, 1, tzinfo=UTC)
    return pa.table({"account_id": ids, "n_exchanges": volume, "iat_cv": regularity,
                     "first_seen": [start] * len(ids), "last_seen": [start + timedelta(days=d) for d in days]})


FEATURES2 = ("n_exchanges", "iat_cv")
REF = _accounts([f"a{i}" for i in range(8)], [1000.0 + 10 * i for i in range(8)], [15.0] * 8, [13.5] * 8)
SLICES = Slices(_accounts(["a0@1", "a0@2", "a1@1"], [250.0, 260.0, 255.0], [0.5] * 3, [0.2] * 3), DAY)


def test_slices_are_neighbours_of_short_lived_accounts_only() -> None:
    """A one-day account like one busy day of a reference account is not novel; an account
    spread over weeks with the same features is compared with whole accounts only."""
    one_day = _accounts(["new"], [256.0], [0.5], [0.2])
    two_weeks = _accounts(["long"], [256.0], [0.5], [13.0])
    plain = KNNNoveltyScorer(k=1, features=FEATURES2).fit(REF)
    sliced = KNNNoveltyScorer(k=1, features=FEATURES2).fit(REF).remember(SLICES)
    assert sliced.suspicion(one_day)[0] < plain.suspicion(one_day)[0] / 10
    assert sliced.suspicion(two_weeks)[0] == plain.suspicion(two_weeks)[0]
    assert sliced.explain(one_day) == [[]]  # nothing stands out against its slice neighbour
    # Calibration: each account's own slices are left out with it (a0's two days, a1's one).
    assert np.allclose(sliced.reference_suspicion(REF), plain.reference_suspicion(REF))


def test_short_lived_reference_accounts_are_calibrated_without_their_own_slices() -> None:
    b = _accounts(["b"], [400.0], [2.0], [0.1])  # a one-day account unlike any other row
    ref = pa.concat_tables([REF, b])
    slices = Slices(pa.concat_tables([SLICES.features, _accounts(["b@1"], [400.0], [2.0], [0.1])]), DAY)
    sliced = KNNNoveltyScorer(k=1, features=FEATURES2).fit(ref).remember(slices)
    like_b = _accounts(["new"], [400.0], [2.0], [0.1])
    assert sliced.suspicion(like_b)[0] == 0  # a new account like b has b (and its slice) as neighbours
    assert sliced.reference_suspicion(ref)[-1] > 1  # b itself is scored without its own slice
    assert sliced.suspicion(b)[0] > 1  # and b's own history never vouches for b


def test_calibrated_passes_slices_to_the_scorer() -> None:
    one_day = _accounts(["new"], [256.0], [0.5], [0.2])
    without = Calibrated(KNNNoveltyScorer(k=1, features=FEATURES2), 0.2, conformal=True).fit(REF)
    with_slices = Calibrated(KNNNoveltyScorer(k=1, features=FEATURES2), 0.2, conformal=True).fit(REF, slices=SLICES)
    assert without.flag(one_day)[0] and not with_slices.flag(one_day)[0]
    assert with_slices.threshold_ == without.threshold_  # calibrated on the same (long-lived) accounts
