"""Green-list watermark (Kirchenbauer et al.): add ``delta`` to the logits of a keyed ``gamma`` share of tokens.

The green-list of each step comes from ``prf.greenlist`` over the previous
``context_width`` tokens (4 by default); with ``context_width=1`` it is exactly the list of
``transformers``' ``WatermarkingConfig(seeding_scheme="lefthash")`` with the same
``hashing_key`` and ``greenlist_ratio``, so either side detects the other's text.
Detection counts green tokens among distinct (context, token) pairs: under the
null each is green with probability ``int(vocab * gamma) / vocab``, and the
p-value is the exact binomial upper tail.

>>> scheme = GreenList(key=15485863, context_width=1)
>>> scheme.detect([5, 9, 5, 9, 5, 9], vocab=100).n_scored  # one pair (5, 9) and one (9, 5), each once
2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from distillguard.errors import ConfigError
from distillguard.stats import TestResult, binomial_test
from distillguard.watermark.base import Scheme, pairs
from distillguard.watermark.prf import greenlist
from distillguard.watermark.selective import entropy


@dataclass(frozen=True)
class GreenList(Scheme):
    key: int
    gamma: float = 0.25
    delta: float = 2.0
    # Four tokens of context by default: with one, common (context, token) pairs recur across texts and
    # a fixed key's p-values drift together (benchmarks/watermark_calibration.py); 1 is what transformers uses.
    context_width: int = 4
    # Mark only steps where the model's next-token entropy is at least this (nats); 0 marks every step.
    # Detection then scores the same steps when given the model's entropies (watermark/selective.py).
    entropy_threshold: float = 0.0
    version: str = "v1"
    name: str = "greenlist"

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0 or self.delta < 0 or self.context_width < 1 or self.entropy_threshold < 0:
            raise ConfigError("greenlist: need 0 < gamma < 1, delta >= 0, context_width >= 1, "
                              f"entropy_threshold >= 0 (got {self})")

    def processor(self, vocab: int) -> LogitsProcessor:
        return GreenListProcessor(self)

    def detect(self, token_ids: Sequence[int], vocab: int, *, prompt_ids: Sequence[int] = (),
               keep: Sequence[bool] | None = None) -> TestResult:
        return self.detect_pairs(list(pairs(token_ids, self.context_width, prompt_ids=prompt_ids, keep=keep)), vocab)

    def detect_pairs(self, found: Sequence[tuple[tuple[int, ...], int]], vocab: int) -> TestResult:
        """The exact test on distinct (context of ``context_width`` tokens, token) pairs."""
        green = sum(token < vocab and bool(greenlist(self.key, context, vocab=vocab, gamma=self.gamma)[token])
                    for context, token in found)
        p0 = int(vocab * self.gamma) / vocab
        return binomial_test(green, len(found), p0=p0,
                             what=f", green-list key {self.version}, width {self.context_width}")


class GreenListProcessor(LogitsProcessor):
    """Adds ``delta`` to the green tokens' logits, row by row, once a row has ``context_width`` tokens
    (and, with an ``entropy_threshold``, only in rows whose distribution is that uncertain)."""

    def __init__(self, scheme: GreenList) -> None:
        self.scheme = scheme

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s = self.scheme
        if input_ids.shape[1] < s.context_width:
            return scores
        out = scores.clone()
        vocab = scores.shape[-1]
        free = entropy(scores) >= s.entropy_threshold if s.entropy_threshold > 0 else None
        for row in range(input_ids.shape[0]):
            if free is not None and not bool(free[row]):
                continue
            mask = greenlist(s.key, input_ids[row, -s.context_width:].tolist(), vocab=vocab, gamma=s.gamma)
            out[row, mask] += s.delta
        return out  # type: ignore[return-value]
