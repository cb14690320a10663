"""Novelty against a benign reference: distance to the nearest benign accounts.

Hard negatives (batch jobs, classrooms, eval harnesses, SaaS backends) are
unusual compared with the median customer but common in a benign reference:
each has close benign neighbours. Harvesters are far from every benign account.
The score is the mean distance to the ``k`` nearest reference accounts in a
robustly scaled feature space; on the reference itself each account's own row
is left out, so calibration sees honest distances.

The reference's accounts cut into daily slices can be neighbours too
(``remember``; ``detect.reference_slice_hours``): a benign account that lived
one busy afternoon resembles one day of a long-lived one, not any whole account.

Use it with a reference of known-benign traffic (``scan --reference``); fitted
on a population that contains a hydra cluster, the cluster's members are each
other's neighbours and look normal.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from distillguard.detect.base import (
    GROUP_COLUMN,
    LOG_SCALED,
    Features,
    Scorer,
    Slices,
    group_names,
    log_scaled,
    owner,
)

# Log scaling of the heavy-tailed ones: base.LOG_SCALED.
FEATURES = (
    "n_exchanges", "exchanges_per_active_day", "template_reuse", "top_template_share", "output_input_ratio",
    "hour_entropy", "iat_cv", "multi_turn_share", "tool_share", "elicitation_rate", "top_capability_share",
    "account_age_days", "mean_prompt_chars",
)
# Computed but not used by default: with them the evasive mimicry campaign is caught, but
# evaluation harnesses (n > 1 for pass@k) cross the 0.1% threshold on hard-negatives.
# topic_mmd: helps against mimicry (evasive capability-targeted recall at the 5% member bar 0.95 → 1.0)
# but a classroom, whose students all ask about one assignment, crosses the member bar as a
# group and became a campaign on disclosure-2026 (campaign FPR 0.000 → 0.007).
# new_model_share_24h: people try a new model the day it ships, so on an account alone it is no
# sign of harvesting. In the detection benchmark at 04be255 all 6 lone false positives (4 of 75
# scans; chat users and a developer with 24-137 exchanges) led with "moved to a new model as soon
# as it was released"; without the feature none of them is flagged and no campaign is lost. A release pivot
# counts where it is rare: shared by linked accounts (``link.evidence`` kind "release") and in a
# campaign's record.
# weekly_entropy, duty_cycle: computed for analysts and custom scorers; the default set already
# separates the simulated scenarios, and each added dimension dilutes the nearest-neighbour distance.
OPTIONAL_FEATURES = ("harvest_format_share", "distinct_temperatures", "topic_mmd", "topic_cohesion",
                     "new_model_share_24h", "weekly_entropy", "duty_cycle")
# feature -> (its value in words, the number's format, what a high value says, what a low one says).
# A reason leads with the words for its direction and keeps every number in brackets: a campaign's
# "most common member findings" count reasons by the text before the bracket.
_LABELS: dict[str, tuple[str, str, str, str]] = {
    "n_exchanges": ("{v}", "{:,.0f} exchanges", "high volume", "low volume"),
    "exchanges_per_active_day": ("{v} per active day", "{:,.0f} exchanges", "busy active days", "quiet active days"),
    "template_reuse": ("template reuse {v}", "{:.2f}", "prompts reuse templates", "prompts rarely reuse templates"),
    "top_template_share": ("top template {v} of traffic", "{:.0%}", "one prompt template dominates",
                           "no prompt template dominates"),
    "output_input_ratio": ("{v} per input token", "{:.1f} output tokens", "long answers to short prompts",
                           "short answers to long prompts"),
    "hour_entropy": ("hour-of-day entropy {v}", "{:.2f}", "active around the clock", "active in few hours of the day"),
    "iat_cv": ("inter-arrival CV {v}", "{:.2f}", "bursty timing", "machine-regular timing"),
    "multi_turn_share": ("{v} of requests multi-turn", "{:.0%}", "many multi-turn conversations",
                         "few multi-turn conversations"),
    "tool_share": ("tools in {v} of requests", "{:.0%}", "heavy tool use", "little tool use"),
    "elicitation_rate": ("elicited in {v} of requests", "{:.0%}", "reasoning often elicited",
                         "reasoning rarely elicited"),
    "top_capability_share": ("{v} of requests in its main capability area", "{:.0%}",
                             "focused on one capability area", "spread over capability areas"),
    "new_model_share_24h": ("{v} on the new model in the 24 h after its release", "{:.0%}",
                            "moved to a new model as soon as it was released",
                            "stayed on older models after a release"),
    "account_age_days": ("{v} from sign-up to first use", "{:,.1f} days", "first used long after sign-up",
                         "first used soon after sign-up"),
    "mean_prompt_chars": ("prompts of {v} on average", "{:,.0f} characters", "long prompts", "short prompts"),
    "harvest_format_share": ("{v} of requests", "{:.0%}", "requests shaped for dataset building",
                             "few requests shaped for dataset building"),
    "distinct_temperatures": ("{v}", "{:.0f} distinct temperatures", "many sampling temperatures",
                              "few sampling temperatures"),
    "topic_mmd": ("MMD² {v}", "{:.3f}", "prompt topics far from benign traffic",
                  "prompt topics close to benign traffic"),
    "topic_cohesion": ("mean topic similarity {v}", "{:.2f}", "prompts on one topic", "prompts on varied topics"),
    "weekly_entropy": ("day-of-week entropy {v}", "{:.2f}", "active every day of the week",
                       "active on few days of the week"),
    "duty_cycle": ("active in {v} of the hours of its span", "{:.0%}", "active most hours of its span",
                   "active in few hours of its span"),
}


def reason(feature: str, value: float, *, typical: float, gap: float, versus: str) -> str:
    """One finding: the words for its direction, then the value, what ``versus`` has, and the gap.

    >>> reason("iat_cv", 0.02, typical=1.1, gap=-5.4, versus="its neighbours")
    'machine-regular timing (inter-arrival CV 0.02 vs about 1.10 for its neighbours; 5.4 scale units lower)'
    >>> reason("new_model_share_24h", 0.6, typical=0.95, gap=-3.1, versus="benign accounts").split(" (")[0]
    'stayed on older models after a release'
    """
    what, number, high, low = _LABELS.get(feature, (feature + " {v}", "{:.3g}", f"high {feature}", f"low {feature}"))
    return (f"{high if gap > 0 else low} ({what.format(v=number.format(value))} vs about {number.format(typical)} "
            f"for {versus}; {abs(gap):.1f} scale units {'higher' if gap > 0 else 'lower'})")


class KNNNoveltyScorer(Scorer):
    """Mean distance to the ``k`` nearest *independent* reference accounts (higher = more novel).

    Rows may carry a ``neighbour_group`` column (``base.GROUP_COLUMN``: the link cluster, or
    null for an unlinked account). Accounts of one group count as one neighbour, and a row is
    never compared with its own group: coordinated accounts do not vouch for each other, and
    when the reference is the scanned population itself, a hydra cluster's members are not
    each other's neighbours. A feature column missing from a table is imputed like a null.

    >>> import numpy as np
    >>> reference = np.array([[1.0, 1.0], [1.1, 0.9], [0.9, 1.1], [1.0, 1.2]])
    >>> scorer = KNNNoveltyScorer(k=2, features=None).fit(reference)
    >>> scorer.suspicion(np.array([[1.0, 1.0], [9.0, 9.0]])).round(1).tolist()
    [0.9, 226.1]
    """

    name: ClassVar[str] = "knn-novelty"
    missing_as_nan: ClassVar[bool] = True

    def __init__(self, k: int = 5, features: tuple[str, ...] | None = FEATURES) -> None:
        self.k = k
        self.features = features

    def _scaled(self, raw: np.ndarray) -> np.ndarray:
        x = log_scaled(raw, self._feature_names())
        x = np.where(np.isnan(x), self.fill_, x)
        return (x - self.center_) / self.scale_

    def fit(self, X: Features, y: object = None) -> Self:
        """Learn the robust scaling and index the reference rows (each one neighbour of its group)."""
        raw, table = self._validate(X, reset=True)
        x = log_scaled(raw, self._feature_names())
        with np.errstate(all="ignore"), warnings.catch_warnings():  # all-null features are allowed
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
            self.fill_ = np.nan_to_num(fill)
            x = np.where(np.isnan(x), self.fill_, x)
            self.center_ = np.median(x, axis=0) if len(x) else np.zeros(x.shape[1])
            q75, q25 = np.percentile(x, [75, 25], axis=0) if len(x) else (np.ones(x.shape[1]), np.zeros(x.shape[1]))
            iqr = (q75 - q25) / 1.349
            std = x.std(axis=0) if len(x) else np.ones(x.shape[1])
        # IQR where the feature varies in the middle, else the standard deviation, else 1.
        self.scale_ = np.where(iqr > 1e-9, iqr, np.where(std > 1e-9, std, 1.0))
        self.reference_ = (x - self.center_) / self.scale_
        names = _groups(table, len(x))
        self.group_codes_ = {g: i for i, g in enumerate(dict.fromkeys(names))}
        self.groups_ = np.array([self.group_codes_[g] for g in names], dtype=np.int64)
        ids = _ids(table, len(x))
        self.group_of_account_ = dict(zip(ids, names, strict=True))
        self.account_codes_ = {a: i for i, a in enumerate(dict.fromkeys(ids))}
        self.accounts_ = np.array([self.account_codes_[a] for a in ids], dtype=np.int64)
        self.index_ = NearestNeighbors().fit(self.reference_) if len(x) else None
        self.slices_: Slices | None = None
        return self

    def remember(self, slices: Slices) -> Self:
        """Use the reference's ``slices`` as further neighbours of short-lived accounts.

        An account whose whole traffic lies in one slice window is compared with the
        reference's accounts *and* their slices: a one-afternoon evaluation run then
        has a benign neighbour (one busy day of a long-lived harness) instead of none.
        Longer-lived accounts are compared with whole accounts only, so an attacker
        spreading over weeks gains no cover from the extra points. A slice belongs to its
        account's group; slices of accounts not in the fitted reference (set aside) are dropped.
        """
        check_is_fitted(self)
        rows = slices.features
        owners = [owner(i) for i in rows.column("account_id").to_pylist()] if rows.num_rows else []
        kept = [i for i, o in enumerate(owners) if o in self.group_of_account_]
        if not kept:
            return self
        rows = rows.take(pa.array(kept, pa.int64()))
        self.slices_ = slices
        self.library_ = np.vstack([self.reference_, self._scaled(self._validate(rows, reset=False)[0])])
        slice_groups = [self.group_codes_[self.group_of_account_[owners[i]]] for i in kept]
        self.library_groups_ = np.concatenate([self.groups_, slice_groups]).astype(np.int64)
        slice_accounts = [self.account_codes_[owners[i]] for i in kept]
        self.library_accounts_ = np.concatenate([self.accounts_, slice_accounts]).astype(np.int64)
        self.library_index_ = NearestNeighbors().fit(self.library_)
        return self

    def _short_lived(self, features: pa.Table | None, n: int) -> np.ndarray:
        """Rows whose first and last exchange fall in the same slice window (all False without slices)."""
        out = np.zeros(n, dtype=bool)
        if self.slices_ is None or features is None or not {"first_seen", "last_seen"} <= set(features.column_names):
            return out
        seconds = self.slices_.seconds
        first, last = _epoch_seconds(features.column("first_seen")), _epoch_seconds(features.column("last_seen"))
        with np.errstate(invalid="ignore"):
            return np.asarray(np.floor(first / seconds) == np.floor(last / seconds), dtype=bool)

    def _query_groups(self, features: pa.Table | None, n: int) -> np.ndarray:
        """Each row's group code in the fitted reference (-1: a group the reference does not hold).

        Rows are matched by ``neighbour_group`` or ``account_id``: an account is never its own
        neighbour, not even through its history in an earlier period (only an analyst's
        clearance, ``feedback``, lets its past vouch for it). Rows with neither (arrays) are new.
        """
        if features is None or not {"account_id", GROUP_COLUMN} & set(features.column_names):
            return np.full(n, -1, dtype=np.int64)
        return np.array([self.group_codes_.get(g, -1) for g in group_names(features)], dtype=np.int64)

    def _query_accounts(self, features: pa.Table | None, n: int) -> np.ndarray:
        """Each row's account code in the fitted reference (-1: not there, or rows without ids)."""
        if features is None or "account_id" not in features.column_names:
            return np.full(n, -1, dtype=np.int64)
        return np.array([self.account_codes_.get(str(a), -1) for a in features.column("account_id").to_pylist()],
                        dtype=np.int64)

    def _neighbours(self, x: np.ndarray, short: np.ndarray, own: np.ndarray, account: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(distances, library row indices) of the ``k`` nearest neighbours of each row of ``x``.

        At most one neighbour per group, none of the row's ``own`` group (leave-one-out, and
        leave-its-cluster-out) and none of its ``account`` (its history in the reference).
        Short-lived rows search the library with slices; others the whole accounts. Indices
        refer to ``library_`` (whose first rows are ``reference_``); missing neighbours are NaN.
        """
        k = self.k
        dist = np.full((len(x), k), np.nan)
        idx = np.zeros((len(x), k), dtype=np.int64)
        for in_library, sel in ((False, ~short), (True, short)):
            if not sel.any() or self.index_ is None:
                continue
            index = self.library_index_ if in_library else self.index_
            groups = self.library_groups_ if in_library else self.groups_
            accounts = self.library_accounts_ if in_library else self.accounts_
            d, i = _distinct_nearest(index, groups, accounts, x[sel], own[sel], account[sel], k)
            dist[sel], idx[sel] = d, i
        return dist, idx

    def suspicion(self, X: Features) -> np.ndarray:
        """Mean distance to the ``k`` nearest independent reference rows (0 with none at all)."""
        check_is_fitted(self)
        raw, table = self._validate(X, reset=False)
        n = len(raw)
        if n == 0:
            return np.zeros(0)
        dist, _ = self._neighbours(self._scaled(raw), self._short_lived(table, n), self._query_groups(table, n),
                                   self._query_accounts(table, n))
        return _mean_distance(dist)

    def reference_suspicion(self, X: Features, groups: list[str] | None = None) -> np.ndarray:
        """Suspicion of the fitted reference (for calibration): each row's own group (itself, its
        cluster and their slices) is left out; with ``groups``, every row of the same group is."""
        check_is_fitted(self)
        if groups is not None:
            return self._reference_suspicion_grouped(X, groups)
        raw, table = self._validate(X, reset=False)
        n = len(raw)
        if n == 0:
            return np.zeros(0)
        named = table is not None and bool({"account_id", GROUP_COLUMN} & set(table.column_names))
        own = self._query_groups(table, n) if named else self.groups_
        account = self._query_accounts(table, n) if named else self.accounts_
        dist, _ = self._neighbours(self._scaled(raw), self._short_lived(table, n), own, account)
        return _mean_distance(dist)

    def _reference_suspicion_grouped(self, X: Features, groups: list[str]) -> np.ndarray:
        """Suspicion of the fitted reference leaving out every row of the same group, not only the row.

        For windows of one account: its other days are its nearest neighbours,
        and leaving out only the row itself would make benign windows look closer
        to the reference than a new account's windows ever are. (Whole rows only:
        remembered slices are not searched.)
        """
        x = self._scaled(self._validate(X, reset=False)[0])
        codes = np.unique(np.asarray(groups), return_inverse=True)[1]
        largest = int(np.bincount(codes).max()) if len(codes) else 0
        n = min(self.k + largest, len(self.reference_))
        assert self.index_ is not None
        dist, idx = self.index_.kneighbors(x, n_neighbors=n)
        dist = np.where(codes[idx] == codes[:, None], np.inf, dist)
        nearest = np.sort(dist, axis=1)[:, : self.k]
        return _mean_distance(np.where(np.isfinite(nearest), nearest, np.nan))

    def explain(self, X: Features, min_gap: float = 2.0, top: int = 3) -> list[list[str]]:
        """Up to ``top`` features per row at least ``min_gap`` scale units from its nearest benign rows."""
        check_is_fitted(self)
        raw, table = self._validate(X, reset=False)
        n = len(raw)
        if n == 0:
            return []
        x = self._scaled(raw)
        dist, idx = self._neighbours(x, self._short_lived(table, n), self._query_groups(table, n),
                                     self._query_accounts(table, n))
        library = self.library_ if self.slices_ is not None else self.reference_
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row with no neighbour at all
            near = np.where(np.isnan(dist)[..., None], np.nan, library[idx])
            centre = np.nanmean(near, axis=1)
            gaps = x - centre  # in scale units, vs the nearest benign accounts (or slices)
        names = self._feature_names()
        out = []
        for i in range(n):
            order = np.argsort(-np.abs(np.nan_to_num(gaps[i])))[:top]
            reasons = []
            for j in order:
                if not abs(gaps[i, j]) >= min_gap or np.isnan(raw[i, j]):  # a missing feature is no reason
                    continue
                reasons.append(reason(names[j], float(raw[i, j]), typical=self._unscaled(float(centre[i, j]), j),
                                      gap=float(gaps[i, j]), versus="its nearest benign accounts"))
            out.append(reasons)
        return out

    def _unscaled(self, value: float, j: int) -> float:
        """Feature ``j``'s raw value at scaled ``value``: what the neighbours' centre means in the data's units."""
        v = value * float(self.scale_[j]) + float(self.center_[j])
        return float(np.expm1(v)) if self._feature_names()[j] in LOG_SCALED else v


def _distinct_nearest(index: NearestNeighbors, groups: np.ndarray, accounts: np.ndarray, x: np.ndarray,
                      own: np.ndarray, account: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``index`` for each row of ``x``, one per group, none of the row's
    ``own`` group and none of its ``account``.

    Asks for a few more candidates than ``k`` and widens the search only for the rows
    whose candidates were mostly of one group (a cluster's members lie close together).
    """
    n_fit = index.n_samples_fit_
    dist = np.full((len(x), k), np.nan)
    idx = np.zeros((len(x), k), dtype=np.int64)
    todo = np.arange(len(x))
    n = min(n_fit, k + 16)
    while len(todo):
        d, i = index.kneighbors(x[todo], n_neighbors=n)
        g = groups[i]
        keep = (g != own[todo][:, None]) & (accounts[i] != account[todo][:, None])
        keep &= _first_of_group(np.where(keep, g, -2))
        d = np.where(keep, d, np.inf)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        d, i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
        width = d.shape[1]
        dist[todo, :width] = np.where(np.isfinite(d), d, np.nan)
        idx[todo, :width] = i
        short = np.isinf(d).any(axis=1) | (width < k)
        if n >= n_fit or not short.any():
            break
        todo, n = todo[short], min(n_fit, n * 4)
    return dist, idx


def _first_of_group(groups: np.ndarray) -> np.ndarray:
    """Per row of ``groups`` (candidates in distance order), True at each group's first column."""
    m, n = groups.shape
    rows = np.repeat(np.arange(m), n)
    flat = groups.ravel()
    order = np.lexsort((np.tile(np.arange(n), m), flat, rows))
    first = np.ones(m * n, dtype=bool)
    first[1:] = (rows[order][1:] != rows[order][:-1]) | (flat[order][1:] != flat[order][:-1])
    out = np.empty(m * n, dtype=bool)
    out[order] = first
    return out.reshape(m, n)


def _ids(features: pa.Table | None, n: int) -> list[str]:
    """Each row's account id (``#i`` for rows without one)."""
    if features is not None and "account_id" in features.column_names:
        return [str(a) for a in features.column("account_id").to_pylist()]
    return [f"#{i}" for i in range(n)]


def _groups(features: pa.Table | None, n: int) -> list[str]:
    """Each row's neighbour group (``base.group_names``; rows of an array are their own groups)."""
    return group_names(features) if features is not None else [f"acct:#{i}" for i in range(n)]


def _mean_distance(dist: np.ndarray) -> np.ndarray:
    """Mean over the available neighbours of each row (NaN where fewer than k exist); 0 with none."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no neighbour at all
        return np.asarray(np.nan_to_num(np.nanmean(dist, axis=1), nan=0.0), dtype=np.float64)


def _epoch_seconds(col: pa.ChunkedArray) -> np.ndarray:
    """Timestamps as float seconds since the epoch (NaN for nulls)."""
    per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[col.type.unit]
    ints = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(ints, dtype=np.float64) / per_second
