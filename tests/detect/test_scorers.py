"""One conformance suite over every registered scorer, plus the calibration rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from distillguard.config import Settings
from distillguard.detect import Calibrated, Scorer, make_scorer, registered_scorers
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
        feats = prepare(small_traffic, s, Settings(), "duckdb", None, link=False).features
    with Store.open(work / "r.duckdb") as s:
        ref = prepare(work / "ref", s, Settings(), "duckdb", None, link=False).features
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
    scores = scorer.score(feats)
    assert scores.shape == (feats.num_rows,) and np.isfinite(scores).all()
    assert np.array_equal(scores, cls().fit(ref).score(feats))  # deterministic
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
    assert np.all(scorer.score(ref) == 0)  # each row is its own nearest neighbour
    assert np.all(scorer.score_reference(ref) > 0)  # left out: honest distances


def test_make_scorer_rules() -> None:
    assert make_scorer("auto", has_reference=True).name == "knn-novelty"
    assert make_scorer("auto", has_reference=False).name == "robust-z"
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_scorer("magic", has_reference=False)


def _volume_table(ids: list[str], volume: list[float], regularity: list[float]) -> pa.Table:
    return pa.table({"account_id": ids, "n_exchanges": volume, "iat_cv": regularity})


def test_remembered_slices_are_neighbours_but_not_calibration_samples() -> None:
    """A one-day account like one busy day of a reference account is not novel; calibration
    leaves each reference account's own slices out with it."""
    features = ("n_exchanges", "iat_cv")
    ref = _volume_table([f"a{i}" for i in range(8)], [1000.0 + 10 * i for i in range(8)], [15.0] * 8)
    slices = _volume_table(["a0@1", "a0@2", "a1@1"], [250.0, 260.0, 255.0], [0.5, 0.5, 0.5])
    one_day = _volume_table(["new"], [256.0], [0.5])
    plain = KNNNoveltyScorer(k=1, features=features).fit(ref)
    sliced = KNNNoveltyScorer(k=1, features=features).fit(ref).remember(slices, ["a0", "a0", "a1"])
    assert sliced.score(one_day)[0] < plain.score(one_day)[0] / 10
    # Calibration: a0's own slices are left out with it, so its score is what it was without them.
    assert np.allclose(sliced.score_reference(ref), plain.score_reference(ref))


def test_calibrated_passes_slices_to_the_scorer() -> None:
    ref = _volume_table([f"a{i}" for i in range(8)], [1000.0 + 10 * i for i in range(8)], [15.0] * 8)
    slices = _volume_table(["a0@1", "a1@1"], [250.0, 255.0], [0.5, 0.5])
    one_day = _volume_table(["new"], [256.0], [0.5])
    without = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges", "iat_cv")), 0.2).fit(one_day, ref)
    with_slices = Calibrated(KNNNoveltyScorer(k=1, features=("n_exchanges", "iat_cv")), 0.2).fit(one_day, ref, slices)
    assert without.flag(one_day)[0] and not with_slices.flag(one_day)[0]
    assert with_slices.threshold_ == without.threshold_  # calibrated on the same account scores
