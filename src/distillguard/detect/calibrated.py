"""The one place where scores become flags: a threshold at a target false-positive rate.

``Calibrated`` wraps a scorer the way river's ``QuantileFilter`` wraps a detector: it
fits the scorer on a reference, learns a quantile of the reference's own scores and
classifies scores against it. It is a scikit-learn outlier detector too
(``score_samples``, ``decision_function`` negative for flagged rows, ``predict`` -1 for them).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Self

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from distillguard.detect.base import Features, Scorer, Slices

log = logging.getLogger(__name__)
_WARNED: set[tuple[int, float]] = set()


class Calibrated(OutlierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Turns a scorer's suspicion into flags at a target false-positive rate.

    ``fit(reference)`` fits a clone of ``scorer`` (``scorer_``) on the reference and sets
    the threshold from the reference's own scores, each row left out (``Scorer.reference_suspicion``).
    ``conformal``: the reference is a separate benign sample and the threshold is the conformal
    ``1 - target_fpr`` quantile, which a new benign account exceeds with probability at most
    ``target_fpr`` (``conformal_threshold``); otherwise the reference is the scored population
    itself and the threshold its plain ``1 - target_fpr`` quantile: its top ``target_fpr`` share.
    Rows with fewer than ``min_exchanges`` exchanges are never flagged.

    >>> import pyarrow as pa
    >>> from distillguard.detect.robust import RobustZScorer
    >>> benign = pa.table({"n_exchanges": [10, 11, 12, 13, 10, 12, 11, 13, 12, 11]})
    >>> det = Calibrated(RobustZScorer(features=("n_exchanges",)), target_fpr=0.1).fit(benign)
    >>> det.flag(pa.table({"n_exchanges": [12, 500]})).tolist()
    [False, True]
    >>> det.predict(pa.table({"n_exchanges": [12, 500]})).tolist()
    [1, -1]
    """

    def __init__(self, scorer: Scorer, target_fpr: float = 0.01, min_exchanges: int = 1,
                 conformal: bool = False) -> None:
        self.scorer = scorer
        self.target_fpr = target_fpr
        self.min_exchanges = min_exchanges
        self.conformal = conformal

    def fit(self, X: Features, y: object = None, *, slices: Slices | None = None) -> Self:
        """Fit the scorer on the reference ``X`` and set the threshold.

        ``slices``: the reference's accounts cut into time windows; the scorer may use
        them as further benign behaviour (``Scorer.remember``), while calibration stays
        one score per reference account.
        """
        self._last = _LastScores()
        self.scorer_: Scorer = clone(self.scorer).fit(X)
        if slices is not None and slices.features.num_rows:
            self.scorer_.remember(slices)
        self.n_features_in_ = self.scorer_.n_features_in_
        if hasattr(self.scorer_, "feature_names_in_"):
            self.feature_names_in_ = self.scorer_.feature_names_in_
        ref_scores = self.scorer_.reference_suspicion(X)
        self.reference_scores_ = np.sort(np.asarray(ref_scores, dtype=np.float64))
        self.threshold_ = self.threshold_at(self.target_fpr)
        self.offset_ = -self.threshold_  # scikit-learn's: decision_function = score_samples - offset_
        n = len(ref_scores)
        if self.conformal and certified_fpr(n, self.target_fpr) > self.target_fpr \
                and (n, self.target_fpr) not in _WARNED:  # once, not every replay window
            _WARNED.add((n, self.target_fpr))
            log.warning("a reference of %d accounts can only certify a false-positive rate of %.3g, "
                        "not the target %.3g: give a larger benign reference", n,
                        certified_fpr(n, self.target_fpr), self.target_fpr)
        return self

    def threshold_at(self, fpr: float) -> float:
        """The score a new benign account exceeds with probability at most ``fpr`` (the population's
        ``1 - fpr`` quantile when it is its own reference; ``inf`` with no scores at all)."""
        ref = self.reference_scores_
        if not self.conformal:
            return float(np.quantile(ref, 1.0 - fpr)) if len(ref) else float("inf")
        return conformal_threshold(ref, fpr)

    def suspicion(self, X: Features) -> np.ndarray:
        """The scorer's suspicion of ``X`` (higher = more suspicious)."""
        check_is_fitted(self)
        scores = self._last.get(X)
        if scores is None:
            scores = self.scorer_.suspicion(X)
            self._last.put(X, scores)
        return scores

    def score_samples(self, X: Features) -> np.ndarray:
        """scikit-learn's sign: higher means more normal (``-suspicion``)."""
        return -self.suspicion(X)

    def decision_function(self, X: Features) -> np.ndarray:
        """``threshold - suspicion``: negative for the rows above the threshold."""
        return self.score_samples(X) - self.offset_

    def classify(self, scores: np.ndarray, fpr: float | None = None) -> np.ndarray:
        """Which ``scores`` lie above the threshold at ``fpr`` (default: the target rate)."""
        threshold = self.threshold_ if fpr is None else self.threshold_at(fpr)
        return np.asarray(np.asarray(scores) > threshold, dtype=bool)

    def above(self, X: Features, fpr: float) -> np.ndarray:
        """Rows scoring above the threshold at ``fpr`` (e.g. the looser bar for campaign members)."""
        return self.classify(self.suspicion(X), fpr)

    def flag(self, X: Features, scores: np.ndarray | None = None) -> np.ndarray:
        """Rows above the threshold with at least ``min_exchanges`` exchanges (``scores``: their suspicion)."""
        flagged = self.classify(self.suspicion(X) if scores is None else scores)
        volume = _volume(X)
        if volume is not None:
            flagged &= volume >= self.min_exchanges
        return np.asarray(flagged, dtype=bool)

    def predict(self, X: Features) -> np.ndarray:
        """scikit-learn's labels: -1 for flagged rows, 1 for the others."""
        return np.where(self.flag(X), -1, 1)

    def explain(self, X: Features) -> list[list[str]]:
        check_is_fitted(self)
        return self.scorer_.explain(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = get_tags(self.scorer).input_tags.allow_nan
        return tags


class _LastScores:
    """The last Arrow table's suspicion: a scan asks for the scores, flags and member bars of one
    table in turn, and each nearest-neighbour search over every account costs seconds.

    A cache, not state: tables are immutable (arrays are not, so they are never kept), and a
    pickled detector forgets it.
    """

    def __init__(self) -> None:
        self._table: pa.Table | None = None
        self._scores: np.ndarray | None = None

    def get(self, X: Features) -> np.ndarray | None:
        return self._scores if self._table is not None and X is self._table else None

    def put(self, X: Features, scores: np.ndarray) -> None:
        if isinstance(X, pa.Table):
            self._table, self._scores = X, scores

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._table, self._scores = None, None


def _volume(X: Features) -> np.ndarray | None:
    """The ``n_exchanges`` column of a table or frame (None for arrays, or without it)."""
    if isinstance(X, pa.Table) and "n_exchanges" in X.column_names:
        return np.asarray(X.column("n_exchanges").to_numpy(zero_copy_only=False))
    columns = getattr(X, "columns", None)
    if columns is not None and "n_exchanges" in columns:
        return np.asarray(X["n_exchanges"])
    return None


def conformal_threshold(reference_scores: np.ndarray, fpr: float) -> float:
    """The smallest reference score that a new benign score exceeds with probability at most ``fpr``.

    With n exchangeable benign scores, a new one exceeds the j-th smallest with
    probability (n + 1 - j) / (n + 1), so j = ceil((n + 1)(1 - fpr)). The plain
    ``1 - fpr`` quantile sits about one rank lower and lets through about
    ``fpr + 1/n`` (0.13% instead of 0.1% with 3,600 reference accounts). A
    reference too small to certify ``fpr`` (n + 1 < 1 / fpr) gives its maximum,
    which certifies 1 / (n + 1); ``certified_fpr`` says so.

    >>> conformal_threshold(np.arange(1.0, 1000.0), 0.01), conformal_threshold(np.arange(1.0, 50.0), 0.01)
    (990.0, 49.0)
    """
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    n = len(ref)
    if n == 0:
        return float("inf")
    rank = math.ceil(round((n + 1) * (1.0 - fpr), 9))  # rounding: (n + 1)(1 - fpr) may miss an integer by 1 ulp
    return float(ref[min(rank, n) - 1])


def certified_fpr(n_reference: int, fpr: float) -> float:
    """The false-positive rate a reference of ``n_reference`` scores can guarantee at target ``fpr``.

    >>> certified_fpr(999, 0.001), certified_fpr(99, 0.001)
    (0.001, 0.01)
    """
    return max(fpr, 1.0 / (n_reference + 1)) if n_reference else 1.0
