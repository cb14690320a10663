"""The keyed pseudo-random functions every watermark scheme shares, for embedding and detection alike.

Two constructions, each written once and used by both sides of its scheme:

- ``greenlist``: the green-list of a context. The seed is the key times the
  context (for a one-token context exactly ``hashing_key * previous_token``, as
  ``transformers``' ``WatermarkLogitsProcessor`` seeds it with ``lefthash``), and
  the green tokens are the first ``int(vocab * gamma)`` of a seeded
  ``torch.randperm``; wider contexts fold their tokens into one hash first.
- ``g_values``: SynthID-Text's g-values. An n-gram is hashed with a linear
  congruential accumulator, once per watermarking key (one key per tournament
  layer), and the hash indexes a seeded table of random bits, as in
  ``transformers``' ``SynthIDTextWatermarkLogitsProcessor``.

Matching ``transformers`` bit for bit is what lets text watermarked by its
``generate()`` be detected here and the reverse (a test checks both). Under the
null hypothesis (text that never saw the key) a token is green with probability
``int(vocab * gamma) / vocab`` and a g-value is 1 with the table's share of ones,
which is what the exact binomial tests use.

>>> mask = greenlist(15485863, [42], vocab=1000, gamma=0.25)
>>> int(mask.sum()), bool(torch.equal(mask, greenlist(15485863, [42], vocab=1000, gamma=0.25)))
(250, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch

LCG_MULTIPLIER = 6364136223846793005  # newlib/musl, as SynthID-Text's accumulate_hash
LCG_INCREMENT = 1


def context_seed(key: int, context: Sequence[int]) -> int:
    """The green-list seed: ``key * token`` for one token, ``key * hash(tokens)`` for more."""
    if len(context) == 1:
        value = int(context[0])
    else:
        value = int(accumulate_hash(torch.ones((), dtype=torch.long), torch.tensor(list(context))))
    return (key * value) % (2**64 - 1)


@lru_cache(maxsize=65536)
def _green(seed: int, vocab: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(vocab, dtype=torch.bool)
    mask[torch.randperm(vocab, generator=generator)[:size]] = True
    return mask


def greenlist(key: int, context: Sequence[int], *, vocab: int, gamma: float) -> torch.Tensor:
    """Boolean mask over the vocabulary: the green tokens after ``context`` under ``key``."""
    return _green(context_seed(key, context), vocab, int(vocab * gamma))


def accumulate_hash(current: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Fold the last axis of ``data`` into ``current``: h = (h + x) * a + c, in wrapping int64."""
    for i in range(data.shape[-1]):
        current = (current + data[..., i]) * LCG_MULTIPLIER + LCG_INCREMENT
    return current


@lru_cache(maxsize=16)
def sampling_table(seed: int, size: int) -> torch.Tensor:
    """The table of random bits g-values are read from (seeded ``torch.randint``, as SynthID-Text's)."""
    return torch.randint(0, 2, (size,), generator=torch.Generator().manual_seed(seed))


def g_values(keys: torch.Tensor, context: torch.Tensor, *, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """g-values of each candidate token after each context: shape ``(*batch, k, depth)``.

    ``context`` is ``(*batch, ngram_len - 1)``, ``tokens`` is ``(*batch, k)``, ``keys`` is ``(depth,)``.
    """
    h = accumulate_hash(torch.ones(context.shape[:-1], dtype=torch.long), context)
    h = (h[..., None] + tokens) * LCG_MULTIPLIER + LCG_INCREMENT
    h = (h[..., None] + keys) * LCG_MULTIPLIER + LCG_INCREMENT
    return table[h % table.shape[0]]


def context_hash(context: torch.Tensor) -> torch.Tensor:
    """Hash of a context alone (SynthID's repeated-context check)."""
    return accumulate_hash(torch.ones(context.shape[:-1], dtype=torch.long), context)
