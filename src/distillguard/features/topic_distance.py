"""How far an account's prompts are from a reference's: topic MMD and cohesion (NumPy over Arrow).

Each prompt's topic SimHash (``signals.topic``) is a vector of 64 random-hyperplane
signs φ(x) ∈ {±1}⁶⁴ of its bag of content words; the kernel k(x, y) = φ(x)·φ(y)/64
is 1 − 2·(share of differing bits), about 1 − 2θ/π for the angle θ between the
prompts' word vectors. Its mean embedding is the account's ``topic_bits``
(``features.account``), so the unbiased maximum mean discrepancy between an
account's n prompts X and the reference R needs no pairwise work:

    MMD²ᵤ(X, R) = (‖Σφ(xᵢ)‖² − 64n) / (64·n(n−1)) − 2·m_X·m_R/64 + ‖m_R‖²/64

(the first term is the mean kernel over distinct pairs of the account's prompts,
reported alone as ``topic_cohesion``; the reference is large, so its own term
is taken as exact). A harvester sweeping one capability with varied prompts has
a high MMD and a moderate cohesion; a template-bound batch job has both high.

The statistics depend on the reference, so ``TopicDistance`` learns its centre in
``fit`` like any scikit-learn transformer; scorers whose features name
``TOPIC_FEATURES`` fit one on their reference (``detect.base.Scorer``).

>>> import pyarrow as pa
>>> ref = pa.table({"n_exchanges": [100, 100], "topic_bits": [[0.5] * 64, [0.5] * 64]})
>>> acct = pa.table({"n_exchanges": [50], "topic_bits": [[1.0] * 64]})
>>> mmd, cohesion = topic_statistics(acct, reference_center(ref))
>>> round(float(mmd[0]), 3), round(float(cohesion[0]), 3)
(1.0, 1.0)
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

BITS = 64
TOPIC_FEATURES = ("topic_mmd", "topic_cohesion")
"""The columns ``with_topic_statistics`` adds."""


def _mean_embedding(features: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(n×64 mean of φ in ±1 units with NaN rows where missing, prompt counts)."""
    n = np.asarray(features.column("n_exchanges").to_numpy(zero_copy_only=False), dtype=np.float64)
    lists = features.column("topic_bits").combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    values = np.asarray(pc.list_flatten(lists).to_numpy(zero_copy_only=False), dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    m = np.full((features.num_rows, BITS), np.nan)
    whole = lengths == BITS  # rows with all 64 bits (others stay NaN)
    m[whole] = 2.0 * values[starts[whole, None] + np.arange(BITS)] - 1.0
    return m, n


def reference_center(reference: pa.Table) -> np.ndarray:
    """The reference's pooled mean embedding m_R (weighted by each account's prompts)."""
    if "topic_bits" not in reference.column_names or reference.num_rows == 0:
        return np.zeros(BITS)
    m, n = _mean_embedding(reference)
    ok = ~np.isnan(m).any(axis=1) & (n > 0)
    if not ok.any():
        return np.zeros(BITS)
    return np.asarray((m[ok] * n[ok, None]).sum(axis=0) / n[ok].sum(), dtype=np.float64)


def topic_statistics(features: pa.Table, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MMD²ᵤ against the reference, topic cohesion) per account; NaN below two prompts."""
    m, n = _mean_embedding(features)
    with np.errstate(all="ignore"):
        total_sq = (m * m).sum(axis=1) * n * n  # ‖Σφ‖²
        cohesion = (total_sq - BITS * n) / (BITS * n * (n - 1))
        mmd = cohesion - 2.0 * (m @ center) / BITS + float(center @ center) / BITS
    few = n < 2
    return np.where(few, np.nan, mmd), np.where(few, np.nan, cohesion)


def with_topic_statistics(features: pa.Table, center: np.ndarray) -> pa.Table:
    """``features`` plus ``topic_mmd`` and ``topic_cohesion`` (unchanged without ``topic_bits``)."""
    if "topic_bits" not in features.column_names:
        return features
    mmd, cohesion = topic_statistics(features, center)
    out = features
    for name, values in zip(TOPIC_FEATURES, (mmd, cohesion), strict=True):
        arr = pa.array(values, pa.float64(), from_pandas=True)  # NaN → null
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    return out


class TopicDistance(BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Adds ``topic_mmd`` and ``topic_cohesion`` against the table it was fitted on (the reference).

    >>> ref = pa.table({"n_exchanges": [100, 100], "topic_bits": [[0.5] * 64, [0.5] * 64]})
    >>> acct = pa.table({"n_exchanges": [50], "topic_bits": [[1.0] * 64]})
    >>> TopicDistance().fit(ref).transform(acct).column("topic_mmd").to_pylist()
    [1.0]
    """

    def fit(self, reference: pa.Table, y: object = None) -> Self:
        """Learn the reference's mean embedding (zeros without ``topic_bits``)."""
        self.center_ = reference_center(reference)
        return self

    def transform(self, features: pa.Table) -> pa.Table:
        """``features`` with the two statistics (unchanged without ``topic_bits``)."""
        check_is_fitted(self)
        return with_topic_statistics(features, self.center_)
