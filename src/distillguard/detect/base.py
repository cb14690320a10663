"""The scorer contract: scikit-learn estimators over account features.

Scorers are scikit-learn estimators (``get_params``, ``set_params``, ``clone``):
settings are constructor keywords with no logic in ``__init__``; ``fit(X) -> self``;
``score_samples(X)`` has scikit-learn's sign (higher = more normal) and ``suspicion(X)``
is its negation (higher = more suspicious: the score a scan writes); ``explain`` gives
reasons. Thresholds live only in ``detect.calibrated.Calibrated``.

``X`` is the ``account_features`` table (pyarrow), a pandas frame or a 2-D array. From
a table or frame a scorer takes its ``features`` columns by name, plus the account,
group and time columns that leaving out and slices need; an array's columns are its
``features`` in that order. With ``features=None`` every column of ``X`` is a feature.

>>> import numpy as np
>>> from sklearn.base import clone
>>> from distillguard.detect.robust import RobustZScorer
>>> scorer = clone(RobustZScorer(features=("n_exchanges",))).fit(np.array([[10.0], [12.0], [11.0], [13.0]]))
>>> scorer.suspicion(np.array([[12.0], [500.0]])).round(1).tolist()
[0.4, 10.0]
>>> scorer.score_samples(np.array([[12.0], [500.0]])).round(1).tolist()
[-0.4, -10.0]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from distillguard.errors import SchemaError
from distillguard.features.topic_distance import TOPIC_FEATURES, TopicDistance

Features: TypeAlias = pa.Table | pd.DataFrame | np.ndarray | Any
"""What scorers accept: an Arrow table or pandas frame (columns by name), or an array-like."""


@dataclass(frozen=True)
class Slices:
    """The benign reference's accounts cut into UTC-aligned windows of ``seconds``.

    ``features`` has the ``account_features`` columns, one row per (account, window)
    with an ``account_id`` of ``"<account>@<window index>"`` (``features.window_features``).
    """

    features: pa.Table
    seconds: float


class Scorer(BaseEstimator, ABC):  # type: ignore[misc]  # sklearn is untyped
    """An account scorer: a scikit-learn estimator over account features."""

    name: ClassVar[str]
    abstract: ClassVar[bool] = True
    missing_as_nan: ClassVar[bool] = False
    """True: a feature column missing from a table is all NaN (imputed); False: it is a ``SchemaError``."""
    features: tuple[str, ...] | None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = "name" not in cls.__dict__

    @abstractmethod
    def fit(self, X: Features, y: object = None) -> Self:
        """Learn what normal looks like from ``X`` (``y`` is ignored)."""

    @abstractmethod
    def suspicion(self, X: Features) -> np.ndarray:
        """One finite float per row; higher means more suspicious."""

    def score_samples(self, X: Features) -> np.ndarray:
        """scikit-learn's sign: higher means more normal (``-suspicion``)."""
        return -self.suspicion(X)

    def remember(self, slices: Slices) -> Self:
        """Also use ``slices`` of the fitted reference's accounts as benign behaviour, though not as
        calibration samples (an account's own slices are left out when it is scored for calibration).

        Scorers that remember no rows have nothing to add: the default ignores them.
        """
        return self

    def reference_suspicion(self, X: Features, groups: list[str] | None = None) -> np.ndarray:
        """``suspicion`` of the table the scorer was fitted on, for calibration.

        Scorers that remember their training rows (nearest neighbours) override this to
        leave each row out, or with ``groups`` every row of the row's group (e.g. one
        account's windows); the default is ``suspicion``.
        """
        return self.suspicion(X)

    def explain(self, X: Features) -> list[list[str]]:
        """Human-readable reasons per row (empty lists by default)."""
        raw, _ = self._validate(X, reset=False)
        return [[] for _ in range(len(raw))]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a missing feature (null) is allowed, as in the account features
        return tags

    def _feature_names(self) -> list[str]:
        """The names of the fitted feature columns (``x0``, ``x1``, ... for an array with ``features=None``)."""
        if self.features is not None:
            return list(self.features)
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{j}" for j in range(self.n_features_in_)]

    def _validate(self, X: Features, *, reset: bool) -> tuple[np.ndarray, pa.Table | None]:
        """(the raw feature matrix, float64 with NaN for nulls; ``X`` as an Arrow table, None for an array).

        ``reset``: in ``fit``, which also learns the topic statistics' reference
        (``features.topic_distance``) when ``features`` name them.
        """
        table = _as_table(X) if self.features is not None else None
        if reset:
            wanted = table is not None and bool(set(TOPIC_FEATURES) & set(self.features or ()))
            self.topic_distance_ = TopicDistance().fit(table) if wanted else None
        if table is None:
            x = validate_data(self, X, reset=reset, **_ARRAY_CHECKS)
            if self.features is not None and x.shape[1] != len(self.features):
                raise ValueError(f"X has {x.shape[1]} columns, but {type(self).__name__} reads them as its "
                                 f"{len(self.features)} features {self.features}; pass a table or frame with "
                                 "those columns, or features=None to use every column")
            return x, None
        if self.topic_distance_ is not None:
            table = self.topic_distance_.transform(table)
        selected = {name: _column_or_nan(table, name, self.missing_as_nan) for name in self.features or ()}
        frame = pd.DataFrame(selected, index=pd.RangeIndex(table.num_rows))
        return validate_data(self, frame, reset=reset, **_ARRAY_CHECKS), table


# Null features are NaN (imputed by each scorer, as before: ``allow_nan``), infinities pass through as the
# pipeline's tables always let them, and an empty table is fine (every reference account may be set aside).
_ARRAY_CHECKS: dict[str, Any] = {"dtype": np.float64, "ensure_all_finite": False, "ensure_min_samples": 0,
                                 "order": "C"}


def _as_table(X: Features) -> pa.Table | None:
    if isinstance(X, pa.Table):
        return X
    if isinstance(X, pd.DataFrame):
        return pa.Table.from_pandas(X, preserve_index=False)
    return None


def _column_or_nan(table: pa.Table, name: str, missing_as_nan: bool) -> np.ndarray:
    if missing_as_nan and name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return column(table, name)


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


def log_scaled(raw: np.ndarray, names: list[str]) -> np.ndarray:
    """``raw`` with its ``LOG_SCALED`` columns (by ``names``) log-transformed.

    Column by column on contiguous copies, so each value is computed exactly as it always was.

    >>> log_scaled(np.array([[np.e - 1, 2.0]]), ["n_exchanges", "hour_entropy"]).tolist()
    [[1.0, 2.0]]
    """
    cols = [np.ascontiguousarray(raw[:, j]) for j in range(raw.shape[1])]
    cols = [np.log1p(np.clip(x, 0, None)) if name in LOG_SCALED else x for x, name in zip(cols, names, strict=True)]
    return np.column_stack(cols) if cols else np.zeros((len(raw), 0))
