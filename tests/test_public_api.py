"""The façade exports what the README promises and nothing missing."""

from __future__ import annotations

import distillguard
from distillguard.config import Settings, load_settings
from distillguard.errors import ConfigError


def test_all_names_resolve() -> None:
    for name in distillguard.__all__:
        assert hasattr(distillguard, name), name
    assert {"scan", "ingest_traffic_dir", "Store", "Settings", "DistillGuardError"} <= set(distillguard.__all__)


def test_scorers_are_scikit_learn_estimators() -> None:
    from sklearn.base import clone

    for scorer in (distillguard.KNNNoveltyScorer(k=3), distillguard.RobustZScorer()):
        assert isinstance(scorer, distillguard.Scorer)
        assert clone(scorer).get_params() == scorer.get_params()
    assert clone(distillguard.Calibrated(distillguard.KNNNoveltyScorer())).get_params()["scorer__k"] == 5


def test_settings_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.toml"
    path.write_text("[detect]\ntarget_fpr = 0.05\n")
    assert load_settings(path).detect.target_fpr == 0.05
    path.write_text("[detect]\ntarget_fpr = 2\n")
    try:
        load_settings(path)
    except ConfigError as exc:
        assert "detect.target_fpr" in str(exc)
    else:
        raise AssertionError("expected ConfigError")
    assert Settings().ingest.max_line_bytes == 16 * 1024 * 1024
