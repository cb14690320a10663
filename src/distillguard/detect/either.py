"""Flag what any of several calibrated detectors flags.

A reference can vouch for attackers it holds and the vetting missed (a campaign that ran
last month too); a population that is its own reference cannot, but has no outside view.
``Either`` runs both and flags an account when either one would: each detector keeps its
own calibration, and the combined score is an account's score in units of the threshold
of the detector that finds it most unusual (above 1: flagged). ``only`` limits a detector to
the accounts it may speak for (the scan's self view: accounts whose group shows harvest
evidence, ``scoring``).

>>> import pyarrow as pa
>>> from distillguard.detect.calibrated import Calibrated
>>> from distillguard.detect.robust import RobustZScorer
>>> benign = pa.table({"n_exchanges": [10, 11, 12, 13, 10, 12, 11, 13, 12, 11]})
>>> a = Calibrated(RobustZScorer(features=("n_exchanges",)), target_fpr=0.1).fit(benign)
>>> b = Calibrated(RobustZScorer(features=("n_exchanges",)), target_fpr=0.1).fit(benign)
>>> Either([a, b]).flag(pa.table({"n_exchanges": [12, 500]})).tolist()
[False, True]
>>> rows = pa.table({"account_id": ["x", "y"], "n_exchanges": [500, 500]})
>>> Either([a], only=[frozenset({"y"})]).flag(rows).tolist()
[False, True]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from distillguard.detect.base import Scorer
from distillguard.detect.calibrated import Calibrated


class Either:
    """The union of ``detectors``' flags, with the ``Calibrated`` methods the scan uses."""

    def __init__(self, detectors: Sequence[Calibrated], *, only: Sequence[frozenset[str] | None] | None = None) -> None:
        self.detectors = list(detectors)
        self.only = list(only) if only is not None else [None] * len(self.detectors)
        first = self.detectors[0]
        self.scorer: Scorer = first.scorer
        self.target_fpr = first.target_fpr
        self.min_exchanges = first.min_exchanges
        self.reference_scores_ = first.reference_scores_
        self.threshold_ = 1.0

    def _ratios(self, features: pa.Table, fpr: float) -> np.ndarray:
        """(detectors × rows): each detector's score over its threshold at ``fpr`` (0 where it has none)."""
        out = []
        ids = features.column("account_id").to_pylist() if "account_id" in features.column_names else None
        for det, only in zip(self.detectors, self.only, strict=True):
            t = det.threshold_at(fpr)
            scores = det.suspicion(features)
            ratio = scores / t if np.isfinite(t) and t > 0 else np.zeros(len(scores))
            if only is not None and ids is not None:
                ratio = np.where(np.array([a in only for a in ids], dtype=bool), ratio, 0.0)
            out.append(ratio)
        return np.vstack(out) if out else np.zeros((0, features.num_rows))

    def suspicion(self, features: pa.Table) -> np.ndarray:
        """The highest score-to-threshold ratio over the detectors (above 1: flagged by one of them)."""
        return np.asarray(self._ratios(features, self.target_fpr).max(axis=0), dtype=np.float64)

    def threshold_at(self, fpr: float) -> float:
        """1.0 at the target rate (the combined score is in threshold units); other rates have no single
        threshold on it (``above`` tests each detector): NaN."""
        return 1.0 if fpr == self.target_fpr else float("nan")

    def above(self, features: pa.Table, fpr: float) -> np.ndarray:
        """Rows that any detector scores above its own threshold at ``fpr``."""
        return np.asarray((self._ratios(features, fpr) > 1.0).any(axis=0), dtype=bool)

    def flag(self, features: pa.Table, scores: np.ndarray | None = None) -> np.ndarray:
        scores = self.suspicion(features) if scores is None else scores
        flagged = scores > 1.0
        if "n_exchanges" in features.column_names:
            flagged &= features.column("n_exchanges").to_numpy(zero_copy_only=False) >= self.min_exchanges
        return np.asarray(flagged, dtype=bool)

    def explain(self, features: pa.Table) -> list[list[str]]:
        """Each row's reasons from the detector that finds it most unusual."""
        ratios = self._ratios(features, self.target_fpr)
        best = ratios.argmax(axis=0) if len(ratios) else np.zeros(features.num_rows, dtype=int)
        reasons = [det.explain(features) for det in self.detectors]
        return [reasons[int(b)][i] for i, b in enumerate(best)]
