"""The vectorised word n-gram hasher gives scikit-learn's HashingVectorizer matrix, value for value."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from distillguard.signals.words import WordNgramHasher, murmur3_32
from distillguard.sim.datasets import find_data_dir, load_pools

_AWKWARD = [
    "", "a", "ab", "a b c", "ΣΑΣ ΟΔΟΣ", "İstanbul x\x00y zz\x00ww", "日本語のテキスト 漢字 ½ ² ٣٤ naïve café_bar",
    "emoji 😀😀 ok ok", "x" * 5000, "one,two;three\n\nfour  five\tsix", "ends with space ", " _ __ ___",
    "mixed ASCII and ü ü ü", "1234 56 7 8.9 10,000", None,
]


def _same(texts: list[str | None], n_features: int) -> None:
    ours = WordNgramHasher(n_features=n_features).transform(texts).tocsr()
    theirs = HashingVectorizer(ngram_range=(1, 2), n_features=n_features, alternate_sign=False,
                               norm="l2").transform([t or "" for t in texts]).tocsr()
    assert np.array_equal(ours.indptr, theirs.indptr)
    assert np.array_equal(ours.indices, theirs.indices)
    assert np.array_equal(ours.data, theirs.data)  # exactly, not approximately


@pytest.mark.parametrize("n_features", [2**4, 2**18])
def test_matches_scikit_learn_on_awkward_texts(n_features: int) -> None:
    _same(_AWKWARD, n_features)
    for text in _AWKWARD:  # one at a time too: a batch of one, all-ASCII or not
        _same([text], n_features)


def test_matches_scikit_learn_on_real_prompts() -> None:
    pools = load_pools(find_data_dir())
    texts = [item["prompt"][:3000] for pool in (pools.math, pools.code, pools.jailbreak, pools.chat)
             for item in pool[:300]]
    _same(texts, 2**18)


def test_murmur3_matches_scikit_learn_for_every_length() -> None:
    raw = bytes(range(33, 127)) * 2
    data = np.frombuffer(raw + b"\x00\x00\x00", dtype=np.uint8).astype(np.uint32)
    window = data[:-3] | data[1:-2] << 8 | data[2:-1] << 16 | data[3:] << 24
    lengths = np.arange(0, 60)
    starts = np.arange(len(lengths)) * 2
    got = murmur3_32(window, starts, lengths)
    assert got.tolist() == [murmurhash3_32(raw[s: s + n], seed=0) for s, n in zip(starts, lengths, strict=True)]
