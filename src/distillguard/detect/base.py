"""The scorer contract and the one place where scores become flags.

Scorers follow scikit-learn/PyOD: settings are constructor keywords with no
logic in ``__init__``; ``fit(features) -> self``; ``score(features)`` returns
one float per row, **higher = more suspicious**, and ``explain`` gives reasons.
Thresholds live only in ``Calibrated``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pyarrow as pa

from distillguard.detect.mmd import reference_center, with_topic_statistics
from distillguard.errors import SchemaError

log = logging.getLogger(__name__)
_WARNED: set[tuple[int, float]] = set()


@dataclass(frozen=True)
class Slices:
    """The benign reference's accounts cut into UTC-aligned windows of ``seconds``.

    ``features`` has the ``account_features`` columns, one row per (account, window)
    with an ``account_id`` of ``"<account>@<window index>"`` (``features.window_features``).
    """

    features: pa.Table
    seconds: float


class Scorer(ABC):
    """An account scorer over the ``account_features`` table."""

    name: ClassVar[str]
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = "name" not in cls.__dict__

    @abstractmethod
    def fit(self, features: pa.Table) -> Self:
        """Learn what normal looks like from ``features``."""

    @abstractmethod
    def score(self, features: pa.Table) -> np.ndarray:
        """One finite float per row; higher means more suspicious."""

    def remember(self, slices: Slices) -> Self:
        """Also use ``slices`` of the fitted reference's accounts as benign behaviour, though not as
        calibration samples (an account's own slices are left out when it is scored for calibration).

        Scorers that remember no rows have nothing to add: the default ignores them.
        """
        return self

    def score_reference(self, reference: pa.Table) -> np.ndarray:
        """Scores of the table the scorer was fitted on, for calibration.

        Scorers that remember their training rows (nearest neighbours) override
        this to leave each row out; the default is ``score``.
        """
        return self.score(reference)

    def score_reference_grouped(self, reference: pa.Table, groups: list[str]) -> np.ndarray:
        """``score_reference`` leaving out every row of the same group (e.g. one account's windows).

        Scorers that remember no rows have nothing to leave out: the default is ``score_reference``.
        """
        return self.score_reference(reference)

    def explain(self, features: pa.Table) -> list[list[str]]:
        """Human-readable reasons per row (empty lists by default)."""
        return [[] for _ in range(features.num_rows)]


class Calibrated:
    """Turns a scorer's raw scores into flags at a target false-positive rate.

    With a *reference* table assumed benign, the threshold is the conformal
    ``1 - target_fpr`` quantile of its scores: a new benign account exceeds it
    with probability at most ``target_fpr`` (``conformal_threshold``). Without
    one, the fitted table is its own reference and the threshold is its plain
    ``1 - target_fpr`` quantile: the top ``target_fpr`` share of the population.

    >>> import pyarrow as pa
    >>> from distillguard.detect.robust import RobustZScorer
    >>> benign = pa.table({"n_exchanges": [10, 11, 12, 13, 10, 12, 11, 13, 12, 11]})
    >>> det = Calibrated(RobustZScorer(features=("n_exchanges",)), target_fpr=0.1).fit(benign)
    >>> det.flag(pa.table({"n_exchanges": [12, 500]})).tolist()
    [False, True]
    """

    def __init__(self, scorer: Scorer, target_fpr: float = 0.01, min_exchanges: int = 1) -> None:
        self.scorer = scorer
        self.target_fpr = target_fpr
        self.min_exchanges = min_exchanges

    def fit(self, features: pa.Table, reference: pa.Table | None = None, slices: Slices | None = None, *,
            conformal: bool | None = None) -> Self:
        """Fit on ``reference`` (else ``features``) and set the threshold.

        ``slices``: the reference's accounts cut into time windows; the scorer may use
        them as further benign behaviour (``Scorer.remember``), while calibration stays
        one score per reference account. Ignored without a reference.
        ``conformal``: the conformal threshold (default: when a separate reference is given)
        or the plain quantile (a population that is its own reference).
        """
        ref = features if reference is None else reference
        self._last: tuple[pa.Table, np.ndarray] | None = None
        self.conformal_ = reference is not None if conformal is None else conformal
        self.topic_center_ = reference_center(ref)
        ref = self.prepare(ref)
        self.scorer.fit(ref)
        if slices is not None and reference is not None and slices.features.num_rows:
            self.scorer.remember(Slices(self.prepare(slices.features), slices.seconds))
        ref_scores = self.scorer.score_reference(ref)
        self.reference_scores_ = np.sort(np.asarray(ref_scores, dtype=np.float64))
        self.threshold_ = self.threshold_at(self.target_fpr)
        if self.conformal_ and certified_fpr(len(ref_scores), self.target_fpr) > self.target_fpr \
                and (len(ref_scores), self.target_fpr) not in _WARNED:  # once, not every replay window
            _WARNED.add((len(ref_scores), self.target_fpr))
            log.warning("a reference of %d accounts can only certify a false-positive rate of %.3g, "
                        "not the target %.3g: give a larger benign reference", len(ref_scores),
                        certified_fpr(len(ref_scores), self.target_fpr), self.target_fpr)
        return self

    def threshold_at(self, fpr: float) -> float:
        """The score a new benign account exceeds with probability at most ``fpr`` (the population's
        ``1 - fpr`` quantile when it is its own reference; ``inf`` with no scores at all)."""
        ref = self.reference_scores_
        if not self.conformal_:
            return float(np.quantile(ref, 1.0 - fpr)) if len(ref) else float("inf")
        return conformal_threshold(ref, fpr)

    def prepare(self, features: pa.Table) -> pa.Table:
        """``features`` plus the statistics measured against the reference (``topic_mmd``, ...)."""
        return with_topic_statistics(features, self.topic_center_)

    def score(self, features: pa.Table) -> np.ndarray:
        """The scorer's scores of ``features`` (prepared against the reference).

        The last table's scores are kept: a scan asks for the same table's scores, flags and
        member bars in turn, and each nearest-neighbour search over every account costs seconds.
        """
        last: tuple[pa.Table, np.ndarray] | None = getattr(self, "_last", None)
        if last is not None and last[0] is features:
            return last[1]
        scores = self.scorer.score(self.prepare(features))
        self._last = (features, scores)
        return scores

    def explain(self, features: pa.Table) -> list[list[str]]:
        return self.scorer.explain(self.prepare(features))

    def above(self, features: pa.Table, fpr: float) -> np.ndarray:
        """Rows scoring above the threshold at ``fpr`` (e.g. the looser bar for campaign members)."""
        return np.asarray(self.score(features) > self.threshold_at(fpr), dtype=bool)

    def flag(self, features: pa.Table, scores: np.ndarray | None = None) -> np.ndarray:
        scores = self.score(features) if scores is None else scores
        flagged = scores > self.threshold_
        if "n_exchanges" in features.column_names:
            volume = features.column("n_exchanges").to_numpy(zero_copy_only=False)
            flagged &= volume >= self.min_exchanges
        return np.asarray(flagged, dtype=bool)


GROUP_COLUMN = "neighbour_group"
"""Optional feature column: accounts of one group (a link cluster) count as one neighbour and never
vouch for each other (null: the account is its own group)."""


def group_names(features: pa.Table) -> list[str]:
    """Each row's neighbour group: ``GROUP_COLUMN`` where set, else the row's own account id.

    >>> group_names(pa.table({"account_id": ["a", "b"], "neighbour_group": ["c1", None]}))
    ['c1', 'acct:b']
    """
    n = features.num_rows
    ids = features.column("account_id").to_pylist() if "account_id" in features.column_names \
        else [f"#{i}" for i in range(n)]
    groups = features.column(GROUP_COLUMN).to_pylist() if GROUP_COLUMN in features.column_names else [None] * n
    return [g if g is not None else f"acct:{a}" for a, g in zip(ids, groups, strict=True)]


def owner(window_id: str) -> str:
    """The account a ``window_features`` row belongs to.

    >>> owner("acct-1@20471")
    'acct-1'
    """
    return window_id.rsplit("@", 1)[0]


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


def column(features: pa.Table, name: str) -> np.ndarray:
    """Column ``name`` as float64 with nulls as NaN, or a clear error."""
    if name not in features.column_names:
        raise SchemaError(f"feature {name!r} missing; have {features.column_names}")
    return np.asarray(features.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


LOG_SCALED = frozenset({
    "n_exchanges", "exchanges_per_active_day", "output_input_ratio", "iat_cv", "account_age_days",
    "mean_prompt_chars", "distinct_temperatures",
})
"""Heavy-tailed features that scorers compare on a log scale (``log1p`` of the value, floored at 0)."""


def feature_matrix(features: pa.Table, names: tuple[str, ...], allow_missing: bool = False) -> np.ndarray:
    """Columns ``names`` of ``features`` as a float matrix, ``LOG_SCALED`` ones log-transformed.

    A missing column is an error unless ``allow_missing``, then it is all NaN.
    """
    cols = []
    for name in names:
        if allow_missing and name not in features.column_names:
            x = np.full(features.num_rows, np.nan)
        else:
            x = column(features, name)
        cols.append(np.log1p(np.clip(x, 0, None)) if name in LOG_SCALED else x)
    return np.column_stack(cols) if cols else np.zeros((features.num_rows, 0))
