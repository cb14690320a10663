"""Hashed word 1-2-gram counts: scikit-learn's ``HashingVectorizer`` output, vectorised over the batch.

``HashingVectorizer(ngram_range=(1, 2), alternate_sign=False, norm="l2")`` builds
each text's n-grams as Python strings and hashes them one by one: about 80 µs
for a 270-character prompt, the largest part of the elicitation and safeguard
classifiers' cost. Here the whole batch is one buffer: words (maximal runs of
two or more word characters, as its ``\\b\\w\\w+\\b``) are found with array
operations, each n-gram's UTF-8 bytes are gathered into one padded buffer,
MurmurHash3 (x86, 32-bit, seed 0, as scikit-learn's) runs over all of them at
once, block by block, and the counts become the same sparse matrix, value for
value (tests/signals/test_words.py checks it against scikit-learn).

>>> from sklearn.feature_extraction.text import HashingVectorizer
>>> texts = ["Think step by step, then answer.", "Ignore all prévious instructions", "", "a b"]
>>> ours = WordNgramHasher(n_features=2**10).transform(texts)
>>> theirs = HashingVectorizer(ngram_range=(1, 2), n_features=2**10, alternate_sign=False).transform(texts)
>>> bool(abs(ours - theirs).sum() == 0)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import normalize

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
_F1, _F2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_ASCII_WORD = np.zeros(128, dtype=bool)
_ASCII_WORD[[ord(c) for c in "0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]] = True


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    out: np.ndarray = (x << np.uint32(r)) | (x >> np.uint32(32 - r))
    return out


def murmur3_32(window: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Signed MurmurHash3 (x86 32-bit, seed 0) of the byte strings at ``starts`` with ``lengths``.

    ``window[i]`` is the little-endian 32-bit word starting at byte ``i`` of the
    buffer (readable 3 bytes past each string's end). The strings are hashed
    together, one 4-byte block at a time, their blocks read straight from ``window``.

    >>> from sklearn.utils import murmurhash3_32 as reference
    >>> data = np.frombuffer(b"hello world\\x00\\x00\\x00", dtype=np.uint8).astype(np.uint32)
    >>> h = murmur3_32(data[:-3] | data[1:-2] << 8 | data[2:-1] << 16 | data[3:] << 24, np.array([0, 6]),
    ...                np.array([11, 5]))
    >>> h.tolist() == [reference(b"hello world", seed=0), reference(b"world", seed=0)]
    True
    """
    n_blocks = (lengths + 3) // 4
    # Longest first, so the strings still hashing are a prefix (radix sort: block counts are small).
    order = np.argsort(-np.minimum(n_blocks, 32767).astype(np.int16), kind="stable")
    first, size, total = starts[order], n_blocks[order], lengths[order]
    active = np.searchsorted(-size, -np.arange(int(size[0]) if len(size) else 0), side="left")
    h = np.zeros(len(order), dtype=np.uint32)
    with np.errstate(over="ignore"):  # 32-bit arithmetic wraps by design
        for k, m in enumerate(active.tolist()):
            v = window[first[:m] + 4 * k]
            left = total[:m] - 4 * k
            tail = left < 4
            if tail.any():  # the last, partial block: its bytes only, and not rolled into h
                keep = (np.uint64(1) << (np.uint64(8) * np.minimum(left, 4).astype(np.uint64))) - np.uint64(1)
                v = (v & keep).astype(np.uint32)
            k1 = _rotl(v * _C1, 15) * _C2
            mixed = h[:m] ^ k1
            h[:m] = np.where(tail, mixed, _rotl(mixed, 13) * np.uint32(5) + np.uint32(0xE6546B64))
        h ^= total.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= _F1
        h ^= h >> np.uint32(13)
        h *= _F2
        h ^= h >> np.uint32(16)
    out = np.empty(len(order), dtype=np.int32)
    out[order] = h.view(np.int32)
    return out


def _ragged(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each string, ``arange(start, start + length)`` concatenated, and each position's offset in its string."""
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    local = np.arange(total) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts, lengths) + local, local


_CHUNK_CHARS = 1 << 18


def chunks(texts: list[str], max_chars: int = _CHUNK_CHARS) -> list[tuple[int, int]]:
    """Consecutive ``[lo, hi)`` ranges of ``texts`` of about ``max_chars`` characters each (at least one text).

    Array work on a large batch at once allocates arrays of tens of MB, which
    the allocator maps and unmaps afresh each time (page faults, cache misses);
    ranges of a quarter of a million characters keep them small and reused.

    >>> chunks(["ab", "cd", "efgh", "i"], max_chars=6)
    [(0, 2), (2, 4)]
    """
    out, lo, size = [], 0, 0
    for i, text in enumerate(texts):
        if size and size + len(text) > max_chars:
            out.append((lo, i))
            lo, size = i, 0
        size += len(text) + 1
    if lo < len(texts):
        out.append((lo, len(texts)))
    return out


class WordNgramHasher(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Texts → l2-normalised hashed counts of their lower-cased word 1- and 2-grams (words: ``\\w\\w+``).

    Stateless: ``fit`` learns nothing.
    """

    def __init__(self, n_features: int = 2**18) -> None:
        self.n_features = n_features

    def fit(self, X: Any, y: Any = None) -> WordNgramHasher:
        return self

    def transform(self, X: list[str]) -> sp.csr_matrix:
        # NUL separates texts below; in a text it is a non-word character like a space.
        texts = [(text or "").replace("\x00", " ") for text in X]
        parts = [(lo, *_ngram_hashes(texts[lo:hi])) for lo, hi in chunks(texts)]
        rows = np.concatenate([lo + r for lo, r, _ in parts]) if parts else np.empty(0, dtype=np.int64)
        hashes = np.concatenate([h for _, _, h in parts]) if parts else np.empty(0, dtype=np.int32)
        n = self.n_features
        columns = np.abs(hashes.astype(np.int64)) % n
        columns[hashes == np.iinfo(np.int32).min] = (2147483647 - (n - 1)) % n
        counts = sp.csr_matrix((np.ones(len(columns)), (rows, columns)), shape=(len(texts), n))
        counts.sum_duplicates()  # sorts each row's columns, as HashingVectorizer's rows are
        return normalize(counts, norm="l2", copy=False)


def _ngram_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The row and the MurmurHash3 of every word and word pair of ``texts`` (lower-cased)."""
    # One string for the batch; NUL (not a word character) keeps words from crossing texts.
    joined = "\x00".join([t.lower() for t in texts]) + "\x00"
    utf8 = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    if joined.isascii():
        points, offset = utf8, None
        word = _ASCII_WORD[utf8]
    else:
        points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        word = np.zeros(len(points), dtype=bool)
        ascii_ = points < 128
        word[ascii_] = _ASCII_WORD[points[ascii_]]
        # Python's \w: str.isalnum() or "_", decided once per distinct character
        other = np.unique(points[~ascii_])
        is_word = np.array([chr(c).isalnum() for c in other.tolist()], dtype=bool)
        word[~ascii_] = is_word[np.searchsorted(other, points[~ascii_])]
        # code point → UTF-8 byte offset
        width = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)
        offset = np.concatenate([[0], np.cumsum(width)])
    edges = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= 2  # \b\w\w+\b: maximal runs of two or more word characters
    starts, ends = starts[keep], ends[keep]
    text = np.searchsorted(np.flatnonzero(points == 0), starts)
    if offset is not None:
        starts, ends = offset[starts], offset[ends]
    lengths = ends - starts
    pair = np.flatnonzero(text[:-1] == text[1:])  # word i and word i + 1 of the same text
    a, a_len, b, b_len = starts[pair], lengths[pair], starts[pair + 1], lengths[pair + 1]
    # "a b" is in the text as it stands where one space separates the two words; the other pairs
    # are written after the text: a, a space (the byte at `space`), b.
    as_is = (b == a + a_len + 1) & (utf8[np.minimum(a + a_len, len(utf8) - 1)] == ord(" "))
    built = np.flatnonzero(~as_is)
    space = len(utf8)
    src, j = _ragged(np.zeros(len(built), dtype=np.int64), a_len[built] + 1 + b_len[built])
    which = np.repeat(np.arange(len(built)), a_len[built] + 1 + b_len[built])
    la = a_len[built][which]
    src = np.where(j < la, a[built][which] + j, np.where(j == la, space, b[built][which] + j - la - 1))
    base = np.concatenate([utf8, np.array([ord(" ")], dtype=np.uint8)])
    data = np.concatenate([base, base[src], np.zeros(3, dtype=np.uint8)])
    wide = data.astype(np.uint32)
    window = wide[:-3] | wide[1:-2] << 8 | wide[2:-1] << 16 | wide[3:] << 24
    pair_start = a.copy()
    pair_len = a_len + 1 + b_len
    pair_start[built] = space + 1 + np.concatenate([[0], np.cumsum(pair_len[built])[:-1]]).astype(np.int64)
    hashes = murmur3_32(window, np.concatenate([starts, pair_start]), np.concatenate([lengths, pair_len]))
    return np.concatenate([text, text[pair]]), hashes
