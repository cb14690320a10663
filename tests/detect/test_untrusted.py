"""Detection pieces that must hold when the reference is untrusted: independent neighbours,
harvest evidence, the union of two detectors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distillguard.detect.calibrated import Calibrated
from distillguard.detect.either import Either
from distillguard.detect.harvest import campaign_evidence, combine
from distillguard.detect.knn import KNNNoveltyScorer


def _table(ids: list[str], x: list[float], groups: list[str | None]) -> pa.Table:
    return pa.table({"account_id": ids, "n_exchanges": x, "neighbour_group": pa.array(groups, pa.string())})


def test_a_cluster_is_one_neighbour_and_never_its_own() -> None:
    # Ten near-identical linked accounts (a hydra cluster) and ten spread-out independent ones.
    hydra = [f"h{i}" for i in range(10)]
    solo = [f"s{i}" for i in range(10)]
    ref = _table(hydra + solo, [1000.0 + i for i in range(10)] + [10.0 * (i + 1) for i in range(10)],
                 ["c1"] * 10 + [None] * 10)
    scorer = KNNNoveltyScorer(k=2, features=("n_exchanges",)).fit(ref)
    own = scorer.suspicion(ref)
    # Members are scored without their own cluster: far from every independent account.
    assert own[:10].min() > 2 * own[10:].max()
    # A new account like the hydra has it as one neighbour only: its second is an independent account.
    new = _table(["n"], [1004.0], [None])
    plain = KNNNoveltyScorer(k=2, features=("n_exchanges",)).fit(ref.drop_columns(["neighbour_group"]))
    assert scorer.suspicion(new)[0] > 10 * plain.suspicion(new)[0]


def test_an_accounts_own_history_does_not_vouch_but_a_new_lookalike_gets_it() -> None:
    ref = _table(["a", "b", "c", "d"], [10.0, 11.0, 12.0, 500.0], [None] * 4)
    scorer = KNNNoveltyScorer(k=1, features=("n_exchanges",)).fit(ref)
    assert scorer.suspicion(_table(["d"], [500.0], [None]))[0] > 1  # the same account, a period later
    assert scorer.suspicion(_table(["e"], [500.0], [None]))[0] == 0  # another account like it


def test_harvest_evidence_separates_a_class_from_a_hydra_cluster() -> None:
    features = pa.table({
        "account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
        "n_exchanges": [60, 70, 65, 400, 420, 410],
        # A maths class asks for steps all lesson; harvesters elicit reasoning and ask for records.
        "elicitation_rate": [0.9, 1.0, 0.95, 0.6, 0.6, 0.6],
        "harvest_format_share": [0.0, 0.0, 0.0, 0.5, 0.5, 0.5],
        "account_age_days": [25.0, 25.0, 26.0, 0.5, 1.0, 0.2],
        "duty_cycle": [0.04, 0.05, 0.04, 0.9, 0.95, 0.9],
        "payment_shared_accounts": [0, 0, 0, 2, 2, 2],
    })
    clusters = pa.table({"account_id": ["s1", "s2", "s3", "h1", "h2", "h3"],
                         "cluster_id": ["class", "class", "class", "hydra", "hydra", "hydra"]})
    ev = campaign_evidence(features, clusters)
    assert ev["class"].score < 0.45 < 0.9 < ev["hydra"].score
    assert any("dataset building" in r for r in ev["hydra"].reasons)


def test_combined_evidence_is_a_noisy_or() -> None:
    assert combine({}).score == 0.0
    assert combine({"formatting": 1.0}).score == 1.0
    assert abs(combine({"elicitation": 1.0, "fresh": 1.0}).score - (1 - 0.6 * 0.4)) < 1e-9


def test_either_flags_what_one_detector_flags_and_tests_member_bars_per_detector() -> None:
    ref_a = pa.table({"n_exchanges": [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19]})
    ref_b = pa.table({"n_exchanges": [10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                                      100, 110, 120, 130, 140, 150, 160, 170, 180, 190]})
    a = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges",)), 0.1, conformal=True).fit(ref_a)
    b = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges",)), 0.1, conformal=True).fit(ref_b)
    both = Either([a, b])
    rows = pa.table({"n_exchanges": [15.0, 145.0, 5000.0]})
    # 15 is ordinary for both, 145 only for b (a flags it), 5000 for neither.
    assert a.flag(rows).tolist() == [False, True, True] and b.flag(rows).tolist() == [False, False, True]
    assert both.flag(rows).tolist() == [False, True, True]
    assert np.all(both.above(rows, 0.5) >= both.flag(rows))
    assert both.threshold_at(0.1) == 1.0


def test_a_cleared_accounts_copy_is_its_benign_neighbour() -> None:
    from distillguard.scoring import _with_cleared, with_groups

    feats = with_groups(pa.table({"account_id": ["a", "b", "c", "d"], "n_exchanges": [10.0, 11.0, 12.0, 500.0]}),
                        None, "")
    library = _with_cleared(feats, feats, frozenset({"d"}))
    scorer = KNNNoveltyScorer(k=1, features=("n_exchanges",)).fit(library)
    assert scorer.suspicion(feats.slice(3))[0] == 0  # d's cleared behaviour vouches for d
