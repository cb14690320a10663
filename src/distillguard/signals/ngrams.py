"""Hashed byte n-gram counts of a whole batch of texts at once, in NumPy.

scikit-learn's ``HashingVectorizer(analyzer="char_wb")`` builds every n-gram as
a Python string: about 50 µs for a 400-character prompt, most of the
elicitation classifier's cost. Here the batch is one byte array: each window of
``n`` bytes is read as an integer, hashed by one multiplication and bucketed,
and the counts become a sparse matrix, all vectorised (about 10 µs a
prompt). Windows never cross a text's edge. Hand-written because no library
hashes the byte n-grams of many texts in one pass.

>>> X = ByteNgramHasher(n=4, n_features=2**10).transform(["Think step by step", "think  STEP by step"])
>>> X.shape, float(abs(X[0] - X[1]).sum())
((2, 1024), 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import normalize

from distillguard.signals.words import chunks

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class ByteNgramHasher(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Texts → l2-normalised hashed counts of the byte ``n``-grams of their lower-cased, space-normalised form.

    Each text is padded with a space at both ends, so its first and last words
    give n-grams of their own, as with ``char_wb``. Stateless: ``fit`` learns nothing.
    """

    def __init__(self, n: int = 4, n_features: int = 2**18) -> None:
        self.n = n
        self.n_features = n_features

    def fit(self, X: Any, y: Any = None) -> ByteNgramHasher:
        return self

    def transform(self, X: list[str]) -> sp.csr_matrix:
        bits = int(self.n_features).bit_length() - 1
        if 1 << bits != self.n_features:
            raise ValueError(f"n_features must be a power of two, got {self.n_features}")
        docs = [" " + " ".join((text or "").replace("\x00", " ").lower().split()) + " " for text in X]
        if not docs:
            return sp.csr_matrix((0, self.n_features))
        parts = [self._counts(docs[lo:hi], bits) for lo, hi in chunks(docs)]  # small arrays: see chunks
        return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")

    def _counts(self, docs: list[str], bits: int) -> sp.csr_matrix:
        # Texts separated (and closed) by NUL bytes, which no text holds any more.
        data = np.frombuffer(("\x00".join(docs) + "\x00").encode("utf-8"), dtype=np.uint8)
        n, windows = self.n, max(len(data) - self.n + 1, 0)
        separator = data == 0
        text_of = np.cumsum(separator) - separator  # the text each byte belongs to
        code = np.zeros(windows, dtype=np.uint64)
        for k in range(n):  # the window's n bytes as one integer
            code |= data[k: k + windows].astype(np.uint64) << np.uint64(8 * k)
        seps = np.concatenate([[0], np.cumsum(separator)])
        inside = (seps[n: n + windows] - seps[:windows]) == 0  # no separator in the window
        with np.errstate(over="ignore"):  # multiplicative hashing wraps by design
            bucket = ((code[inside] * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int64)
        # Windows come text by text, so the rows are already in order: build CSR directly.
        per_text = np.bincount(text_of[:windows][inside], minlength=len(docs))
        indptr = np.concatenate([[0], np.cumsum(per_text)])
        counts = sp.csr_matrix((np.ones(len(bucket)), bucket, indptr), shape=(len(docs), self.n_features))
        counts.sum_duplicates()
        return normalize(counts, norm="l2", copy=False)
