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
    """``entropies`` for many (prompt ids, text ids), right-padded in batches (one forward pass each).

    A sequence longer than the model's context is read in consecutive windows, as the model would
    have to read it (each window's first steps then see less prefix).
    """
    config = model.config
    context = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048)
    seqs = [[int(i) for i in (*p, *t)] for p, t in texts]
    pieces = [(n, s) for n, seq in enumerate(seqs) for s in range(0, max(len(seq), 1), context)]
    per_seq: list[list[float]] = [[] for _ in seqs]
    for start in range(0, len(pieces), batch):
        chunk = pieces[start:start + batch]
        windows = [seqs[n][s:s + context] for n, s in chunk]
        width = max(max(len(w) for w in windows), 1)
        ids = torch.zeros((len(windows), width), dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for i, w in enumerate(windows):
            ids[i, :len(w)] = torch.tensor(w, dtype=torch.long)
            mask[i, :len(w)] = 1
        with torch.inference_mode():
            h = entropy(model(input_ids=ids, attention_mask=mask).logits)
        for i, ((n, _), w) in enumerate(zip(chunk, windows, strict=True)):
            per_seq[n] += h[i, :len(w)].tolist()
    out = []
    for (p, t), h_all in zip(texts, per_seq, strict=True):
        # Position j's logits predict token j + 1: the first text token follows the prompt's last.
        first = len(p) - 1
        out.append(([float("inf")] if first < 0 else []) + h_all[max(first, 0):first + len(t)] if t else [])
    return out


def keep_uncertain(model: PreTrainedModel, prompt_ids: Sequence[int], token_ids: Sequence[int],
                   threshold: float) -> list[bool]:
    """One flag per token of the text: whether the model's entropy there reached ``threshold`` nats."""
    return [h >= threshold for h in entropies(model, prompt_ids, token_ids)]
