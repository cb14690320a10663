"""Entropy-selective marking and scoring (SWEET, Lee et al. 2024): act only where the model had a choice.

A model answering an exact task is certain at most steps (a digit of a sum)
and free at a few (which of several equivalent words to use). A mark can only
move the free steps, and a mark that touches a certain step can only cost
accuracy; scoring the certain steps adds pairs that carry no signal. So the
green-list processor leaves a step alone when the entropy of the model's own
next-token distribution is below ``entropy_threshold`` nats, and the provider,
who holds the model, recomputes the same entropies to score only those steps.
The choice of positions depends on the model and the text, never on the key,
so under the null the binomial test stays exact.

>>> round(float(entropy(torch.zeros(1, 4))[0]), 3)  # uniform over 4 tokens: ln 4
1.386
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the softmax of each row of ``logits``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def entropies(model: PreTrainedModel, prompt_ids: Sequence[int], token_ids: Sequence[int]) -> list[float]:
    """The model's next-token entropy before each of ``token_ids``, the text following ``prompt_ids``."""
    return entropies_batch(model, [(prompt_ids, token_ids)])[0]


def entropies_batch(model: PreTrainedModel, texts: Sequence[tuple[Sequence[int], Sequence[int]]],
                    batch: int = 32) -> list[list[float]]:
    """``entropies`` for many (prompt ids, text ids), right-padded in batches (one forward pass each)."""
    out: list[list[float]] = []
    for start in range(0, len(texts), batch):
        chunk = texts[start:start + batch]
        seqs = [[int(i) for i in (*p, *t)] for p, t in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        h = entropy(logits)
        for i, (p, t) in enumerate(chunk):
            # The logits at position j predict token j + 1; the first text token follows the prompt's last.
            first = len(p) - 1
            row = h[i, max(first, 0):first + len(t)].tolist() if t else []
            out.append(([float("inf")] if first < 0 else []) + row)  # no prompt: the first token was free
    return out


def keep_uncertain(model: PreTrainedModel, prompt_ids: Sequence[int], token_ids: Sequence[int],
                   threshold: float) -> list[bool]:
    """One flag per token of the text: whether the model's entropy there reached ``threshold`` nats."""
    return [h >= threshold for h in entropies(model, prompt_ids, token_ids)]
