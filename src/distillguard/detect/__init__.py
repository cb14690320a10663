"""Account scorers (scikit-learn estimators, found by the registry) and the calibration wrapper.

>>> from sklearn.base import clone
>>> clone(KNNNoveltyScorer(k=3)).get_params()["k"]
3
"""

from __future__ import annotations

import sys

from distillguard._registry import SCORERS_GROUP, discover
from distillguard.detect.base import Scorer, Slices
from distillguard.detect.calibrated import Calibrated
from distillguard.detect.knn import KNNNoveltyScorer
from distillguard.detect.robust import RobustZScorer
from distillguard.errors import ConfigError

__all__ = ["Calibrated", "KNNNoveltyScorer", "RobustZScorer", "Scorer", "Slices", "make_scorer", "registered_scorers"]


def registered_scorers() -> list[type[Scorer]]:
    """Every ``Scorer`` subclass defined in this package or installed as a plugin, by name."""
    return discover(sys.modules[__name__], Scorer, SCORERS_GROUP)  # type: ignore[type-abstract]


def make_scorer(name: str, has_reference: bool, k_neighbors: int = 2) -> Scorer:
    """The scorer called ``name``; ``auto`` is knn-novelty with a benign reference, else robust-z.

    Nearest-neighbour novelty needs a reference free of attackers (a hydra
    cluster's members would be each other's neighbours), hence the rule. A scorer
    with a ``k`` parameter gets ``k_neighbors``.
    """
    if name == "auto":
        name = "knn-novelty" if has_reference else "robust-z"
    scorers = {cls.name: cls for cls in registered_scorers()}
    if name not in scorers:
        raise ConfigError(f"unknown scorer {name!r}; choose auto or one of {', '.join(sorted(scorers))}")
    scorer = scorers[name]()
    if "k" in scorer.get_params():
        scorer.set_params(k=k_neighbors)
    return scorer
