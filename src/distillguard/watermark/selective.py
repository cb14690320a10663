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

from collections.abc import Callable, Sequence
from typing import Any

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
    """``entropies`` for many (prompt ids, text ids), in batches; long sequences are read in windows."""
    per_seq = read_windows(model, [[int(i) for i in (*p, *t)] for p, t in texts], reduce=entropy, batch=batch)
    out = []
    for (p, t), h in zip(texts, per_seq, strict=True):
        h_all = h.tolist()
        # Position j's logits predict token j + 1: the first text token follows the prompt's last.
        first = len(p) - 1
        out.append(([float("inf")] if first < 0 else []) + h_all[max(first, 0):first + len(t)] if t else [])
    return out


def model_context(model: Any) -> int:
    """The longest sequence ``model`` reads at once (its position embeddings), 2048 if its config says none."""
    config = model.config
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048)


def read_windows(model: Any, texts: Sequence[Sequence[int]], *, reduce: Callable[[torch.Tensor], torch.Tensor],
                 batch: int = 16) -> list[torch.Tensor]:
    """Per text, ``reduce`` of the model's next-token logits at each of its positions (teacher forcing).

    Texts are right-padded into batches, one forward pass each; a text longer than the model's context
    is read in consecutive windows, as the model would have to read it (each window's first steps then
    see less prefix). ``reduce`` maps logits (batch, positions, vocab) to (batch, positions, ...).
    """
    context = model_context(model)
    pieces = [(n, s) for n, t in enumerate(texts) for s in range(0, max(len(t), 1), context)]
    parts: list[list[torch.Tensor]] = [[] for _ in texts]
    for start in range(0, len(pieces), batch):
        chunk = pieces[start:start + batch]
        windows = [[int(i) for i in texts[n][s:s + context]] for n, s in chunk]
        width = max(max(len(w) for w in windows), 1)
        ids = torch.zeros((len(windows), width), dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for i, w in enumerate(windows):
            ids[i, :len(w)] = torch.tensor(w, dtype=torch.long)
            mask[i, :len(w)] = 1
        with torch.inference_mode():
            reduced = reduce(model(input_ids=ids, attention_mask=mask).logits)
        for i, ((n, _), w) in enumerate(zip(chunk, windows, strict=True)):
            parts[n].append(reduced[i, :len(w)])
    return [torch.cat(p) for p in parts]


def keep_uncertain(model: PreTrainedModel, *, prompt_ids: Sequence[int], token_ids: Sequence[int],
                   threshold: float) -> list[bool]:
    """One flag per token of the text: whether the model's entropy there reached ``threshold`` nats."""
    return [h >= threshold for h in entropies(model, prompt_ids, token_ids)]
