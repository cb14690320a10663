"""A transparent baseline: one-sided robust z-scores of behavioural features.

Each feature is centred on the population median and scaled by its MAD (so a
minority of attackers cannot move the reference); the score is the mean of the
positive, clipped z-scores in the suspicious direction of each feature.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Self

import numpy as np
from sklearn.utils.validation import check_is_fitted

from distillguard.detect.base import LOG_SCALED, Features, Scorer, log_scaled
from distillguard.detect.knn import reason

# feature -> direction: +1 when high values are suspicious (log scaling: base.LOG_SCALED).
_DEFAULT: dict[str, int] = {
    "n_exchanges": +1,
    "exchanges_per_active_day": +1,
    "template_reuse": +1,
    "top_template_share": +1,
    "output_input_ratio": +1,
    "hour_entropy": +1,
    "iat_cv": -1,
}


class RobustZScorer(Scorer):
    """Mean one-sided robust z-score over ``features`` (higher = more anomalous).

    A feature column missing from a table is a ``SchemaError``; a null value scores 0.
    """

    name: ClassVar[str] = "robust-z"

    def __init__(self, features: tuple[str, ...] | None = tuple(_DEFAULT), clip: float = 10.0) -> None:
        self.features = features
        self.clip = clip

    def _matrix(self, raw: np.ndarray) -> np.ndarray:
        names = self._feature_names()
        directions = np.array([_DEFAULT.get(f, +1) for f in names], dtype=np.float64)
        return log_scaled(raw, names) * directions

    def fit(self, X: Features, y: object = None) -> Self:
        """Learn each feature's median and MAD."""
        x = self._matrix(self._validate(X, reset=True)[0])
        with warnings.catch_warnings():  # an all-null feature is fine: it scores 0
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
            mad = np.nanmedian(np.abs(x - median), axis=0) * 1.4826 if len(x) else median
        self.median_ = np.nan_to_num(median)
        self.scale_ = np.where(np.isfinite(mad) & (mad > 1e-9), mad, 1.0)
        return self

    def _z(self, raw: np.ndarray) -> np.ndarray:
        z = (self._matrix(raw) - self.median_) / self.scale_
        return np.clip(np.nan_to_num(z, nan=0.0), 0.0, self.clip)

    def suspicion(self, X: Features) -> np.ndarray:
        """The mean clipped one-sided z-score of each row."""
        check_is_fitted(self)
        raw, _ = self._validate(X, reset=False)
        z = self._z(raw)
        return z.mean(axis=1) if z.shape[1] else np.zeros(len(raw))

    def explain(self, X: Features, min_z: float = 3.0, top: int = 3) -> list[list[str]]:
        """Up to ``top`` features per row with a robust z of at least ``min_z`` (``knn.reason`` sentences).

        >>> import pyarrow as pa
        >>> scorer = RobustZScorer(features=("iat_cv",)).fit(pa.table({"iat_cv": [0.8, 1.0, 1.2, 1.1, 0.9]}))
        >>> scorer.explain(pa.table({"iat_cv": [0.01]}))[0][0].split(" (")[0]
        'machine-regular timing'
        """
        check_is_fitted(self)
        raw, _ = self._validate(X, reset=False)
        z = self._z(raw)
        names = self._feature_names()
        reasons = []
        for i in range(len(raw)):
            order = np.argsort(-z[i])[:top]
            # One-sided: the gap always points the feature's suspicious way.
            reasons.append([
                reason(names[j], float(raw[i, j]), typical=self._median(j),
                       gap=_DEFAULT.get(names[j], +1) * float(z[i, j]), versus="the median account")
                for j in order if z[i, j] >= min_z
            ])
        return reasons

    def _median(self, j: int) -> float:
        """Feature ``j``'s median in the data's units (``median_`` is signed and maybe log-scaled)."""
        name = self._feature_names()[j]
        v = _DEFAULT.get(name, +1) * float(self.median_[j])
        return float(np.expm1(v)) if name in LOG_SCALED else v
