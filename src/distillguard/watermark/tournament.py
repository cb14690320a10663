"""Tournament-sampling watermark in the style of SynthID-Text: ``depth`` keyed layers of g-values.

Each layer has its own key; a candidate token's g-value in a layer is one
keyed random bit of the n-gram it would complete (``prf.g_values``). Sampling
favours tokens that win the layers' tournaments; the logits update is the
expected outcome of a two-candidate tournament per layer, as in
``transformers``' ``SynthIDTextWatermarkLogitsProcessor`` (whose g-values these
are, bit for bit, for the same keys, ``ngram_len`` and sampling table), and a
context seen before in the same answer is not watermarked again. Detection
reads the g-values of distinct (context, token) pairs: under the null each is 1
with the table's share of ones, so the count of ones over ``pairs × depth`` has
an exact binomial tail.

>>> scheme = Tournament(keys=list(range(1, 31)))
>>> scheme.detect(list(range(100)), vocab=200).n_scored  # 96 distinct 5-grams, 30 layers each
96
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from distillguard.errors import ConfigError
from distillguard.stats import TestResult, binomial_test
from distillguard.watermark.base import Scheme, pairs
from distillguard.watermark.prf import context_hash, g_values, sampling_table


@dataclass(frozen=True)
class Tournament(Scheme):
    keys: list[int] = field(default_factory=list)
    key: int | None = None  # a single integer expands to ``depth`` layer keys
    depth: int = 30
    ngram_len: int = 5
    sampling_table_size: int = 2**16
    sampling_table_seed: int = 0
    version: str = "v1"
    name: str = "tournament"

    def __post_init__(self) -> None:
        if not self.keys and self.key is None:
            raise ConfigError("tournament: give 'keys' (one per layer) or one integer 'key'")
        if self.ngram_len < 2 or self.sampling_table_size < 2:
            raise ConfigError("tournament: ngram_len >= 2 and sampling_table_size >= 2")

    @property
    def context_width(self) -> int:
        """Tokens of context each g-value depends on (an n-gram is its context and its token)."""
        return self.ngram_len - 1

    @property
    def layer_keys(self) -> torch.Tensor:
        if self.keys:
            return torch.tensor(self.keys, dtype=torch.long)
        generator = torch.Generator().manual_seed(int(self.key or 0) % (2**63))
        return torch.randint(0, 2**62, (self.depth,), generator=generator)

    @property
    def table(self) -> torch.Tensor:
        return sampling_table(self.sampling_table_seed, self.sampling_table_size)

    def processor(self, vocab: int) -> LogitsProcessor:
        return TournamentProcessor(self)

    def detect(self, token_ids: Sequence[int], vocab: int, *, prompt_ids: Sequence[int] = (),
               keep: Sequence[bool] | None = None) -> TestResult:
        return self.detect_pairs(list(pairs(token_ids, self.context_width, prompt_ids=prompt_ids, keep=keep)), vocab)

    def detect_pairs(self, found: Sequence[tuple[tuple[int, ...], int]], vocab: int) -> TestResult:
        """The exact test on distinct (context of ``ngram_len - 1`` tokens, token) pairs."""
        keys, table = self.layer_keys, self.table
        if not found:
            return binomial_test(0, 0, p0=0.5)
        contexts = torch.tensor([c for c, _ in found], dtype=torch.long)
        tokens = torch.tensor([[t] for _, t in found], dtype=torch.long)
        g = g_values(keys, contexts, tokens=tokens, table=table)  # (pairs, 1, depth)
        p0 = float(table.float().mean())
        return binomial_test(int(g.sum()), int(g.numel()), p0=p0,
                             what=f", tournament g-values key {self.version}, {len(keys)} layers", n_scored=len(found))


class TournamentProcessor(LogitsProcessor):
    """One instance per generation: remembers the contexts it watermarked, row by row."""

    def __init__(self, scheme: Tournament) -> None:
        self.scheme = scheme
        self.keys, self.table = scheme.layer_keys, scheme.table
        self.seen: list[set[int]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        width = self.scheme.context_width
        if input_ids.shape[1] < width:
            return scores
        rows, vocab = scores.shape
        while len(self.seen) < rows:
            self.seen.append(set())
        context = input_ids[:, -width:]
        candidates = torch.arange(vocab).expand(rows, vocab)
        g = g_values(self.keys, context, tokens=candidates, table=self.table).float()  # (rows, vocab, depth)
        probs = torch.softmax(scores.float(), dim=-1)
        for layer in range(g.shape[-1]):  # expected winner of a two-candidate tournament, layer by layer
            gl = g[:, :, layer]
            probs = probs * (1 + gl - (gl * probs).sum(dim=-1, keepdim=True))
        updated = torch.log(probs)
        updated = torch.where(torch.isfinite(updated), updated, torch.finfo(updated.dtype).min)
        hashes = context_hash(context).tolist()
        out = scores.clone().float()
        for row, h in enumerate(hashes):
            if h not in self.seen[row]:  # a repeated context keeps its plain distribution
                self.seen[row].add(h)
                out[row] = updated[row]
        return out  # type: ignore[return-value]
