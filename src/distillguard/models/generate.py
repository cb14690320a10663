"""Batched token-by-token decoding with a KV cache, per-row logits processors, and the reasoning split.

The lab's own loop rather than ``generate()``: several requests decode together
(one forward pass per step for every row, left-padded, so a CPU model serves a
harvest several times faster than one request at a time), each row with its
own sampling settings and logits processors (how watermarks and sampling
defences plug in), each token handed out as soon as it exists (streaming), and
a row stops as soon as its client goes away. ``Channels`` routes tokens between
``<think>`` and ``</think>`` to ``reasoning_content`` and the rest to ``content``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from distillguard.errors import ConfigError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
"""The tokens around a model's reasoning: what it says between them is ``reasoning_content``."""


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one request (OpenAI semantics: temperature 0 is greedy)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Row:
    """One sequence to decode: its prompt, settings and processors; ``stopped`` ends it early (disconnect)."""

    prompt: list[int]
    sampling: Sampling
    processors: LogitsProcessorList = field(default_factory=LogitsProcessorList)
    stopped: Callable[[], bool] = lambda: False


@dataclass
class Model:
    """A loaded causal LM with its tokenizer and context length."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    context: int = field(init=False)

    def __post_init__(self) -> None:
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
                           or 2048)
        self.model.eval()  # type: ignore[no-untyped-call]
        params = inspect.signature(self.model.forward).parameters
        # transformers 5.x renamed the KV cache argument ``past_key_values`` → ``cache``; accept both.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._positions = "position_ids" in params

    def prompt_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of the chat prompt, assistant turn opened."""
        ids: Any = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def check_fits(self, prompt: list[int], sampling: Sampling) -> None:
        """``ConfigError`` when the prompt plus ``max_tokens`` exceed the context length."""
        if len(prompt) + sampling.max_tokens > self.context:
            raise ConfigError(f"this model's maximum context length is {self.context} tokens; the prompt has "
                              f"{len(prompt)} and max_tokens asks for {sampling.max_tokens} more")

    def decode(self, rows: Sequence[Row]) -> Iterator[list[tuple[int, int | None]]]:
        """Decode ``rows`` together; per step, ``(row index, token)`` for each row that moved (None: it ended).

        A row ends at end of sequence, at its ``max_tokens``, or when ``stopped()`` turns true.
        """
        for row in rows:
            self.check_fits(row.prompt, row.sampling)
        if not rows:
            return
        pad, eos = self.tokenizer.pad_token_id or 0, self.tokenizer.eos_token_id
        width = max(len(r.prompt) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: every prompt ends where decoding starts
            ids[i, width - len(r.prompt):] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt):] = 1
        seen = [torch.tensor([r.prompt], dtype=torch.long) for r in rows]
        generators = [torch.Generator().manual_seed(r.sampling.seed) if r.sampling.seed is not None else None
                      for r in rows]
        counts = [0] * len(rows)
        live = set(range(len(rows)))
        step_ids, past = ids, None
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        while live:
            kwargs: dict[str, Any] = {self._cache_arg: past}
            if self._positions:
                kwargs["position_ids"] = positions
            with torch.inference_mode():
                out = self.model(input_ids=step_ids, attention_mask=mask, use_cache=True, **kwargs)
            past = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            logits = out.logits[:, -1, :].float()
            events: list[tuple[int, int | None]] = []
            next_ids = torch.full((len(rows), 1), pad, dtype=torch.long)
            for i in sorted(live):
                r = rows[i]
                if r.stopped():
                    live.discard(i)
                    events.append((i, None))
                    continue
                scores = (r.processors(seen[i], logits[i:i + 1])  # type: ignore[arg-type]
                          if r.processors else logits[i:i + 1])
                token = _pick(scores[0], r.sampling, generators[i])
                if token == eos:
                    live.discard(i)
                    events.append((i, None))
                    continue
                counts[i] += 1
                events.append((i, token))
                next_ids[i, 0] = token
                seen[i] = torch.cat([seen[i], next_ids[i:i + 1]], dim=1)
                if counts[i] >= r.sampling.max_tokens:
                    live.discard(i)
                    events.append((i, None))
            yield events
            step_ids = next_ids
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            # Rows that ended keep stepping with padding; clamp so their positions stay in range.
            positions = (positions[:, -1:] + 1).clamp(max=self.context - 1)


def _pick(scores: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    if sampling.temperature <= 0:
        return int(torch.argmax(scores))
    probs = torch.softmax(scores / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < sampling.top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


class Channels:
    """Splits generated tokens into ``reasoning_content`` and ``content`` text deltas.

    Text is decoded per channel from all its tokens so far, and a delta is held
    back while it ends in an incomplete UTF-8 sequence (byte-level BPE splits
    characters across tokens).

    >>> from distillguard.lab.tokenizer import train_tokenizer
    >>> tok = train_tokenizer(["the sum is 19", "so the answer is"], vocab_size=300)
    >>> ch = Channels(tok)
    >>> ids = tok("<think>the sum is 19</think>19")["input_ids"]
    >>> deltas = [d for i in ids for d in ch.feed(i)]
    >>> "".join(t for c, t in deltas if c == "reasoning_content"), "".join(t for c, t in deltas if c == "content")
    ('the sum is 19', '19')
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
        self.close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
        self.special = set(tokenizer.all_special_ids)
        self.channel = "content"
        self.ids: dict[str, list[int]] = {"content": [], "reasoning_content": []}
        self.sent: dict[str, int] = {"content": 0, "reasoning_content": 0}
        self.counts: dict[str, int] = {"content": 0, "reasoning_content": 0}
        self.generated = 0  # every token fed, the <think> markers included

    def feed(self, token: int) -> list[tuple[str, str]]:
        self.generated += 1
        if token == self.open_id:
            self.channel = "reasoning_content"
            return []
        if token == self.close_id:
            self.channel = "content"
            return []
        self.counts[self.channel] += 1
        if token in self.special:
            return []
        self.ids[self.channel].append(token)
        text = str(self.tokenizer.decode(self.ids[self.channel]))
        if text.endswith("\ufffd"):
            return []
        delta = text[self.sent[self.channel]:]
        self.sent[self.channel] = len(text)
        return [(self.channel, delta)] if delta else []

    def text(self, channel: str) -> str:
        return str(self.tokenizer.decode(self.ids[channel]))
