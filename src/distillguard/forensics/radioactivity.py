"""Radioactivity: was a suspect model trained on our watermarked outputs? (Sander et al., 2024)

Open setting (the suspect's weights): run the suspect over our watermarked
texts and score its own next-token *predictions* (argmax) against the green
lists of the true contexts; a model fine-tuned on watermarked text predicts
green tokens more often than ``gamma``. Closed setting (an API): prompt the
suspect and score what it writes, as for any text. Either way each (context,
token) pair is scored once over the whole sample, pairs that a prompt contains
are skipped, and the p-value is the scheme's exact binomial tail.

>>> from distillguard.watermark.greenlist import GreenList
>>> radioactivity_from_tokens(GreenList(key=1, context_width=1), [[1, 2, 3, 1, 2, 3]], vocab=100).n_scored
3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from distillguard.forensics.stats import TestResult
from distillguard.watermark.base import Scheme, pairs


def radioactivity_from_tokens(scheme: Scheme, texts: Sequence[Sequence[int]], vocab: int,
                              prompts: Sequence[Sequence[int]] = (),
                              keep: Sequence[Sequence[bool]] | None = None) -> TestResult:
    """The scheme's test on a whole sample: each distinct (context, token) pair of all texts once
    (only at kept positions, when ``keep`` gives one flag per token of each text)."""
    found: dict[tuple[tuple[int, ...], int], None] = {}
    for i, ids in enumerate(texts):
        prompt = prompts[i] if i < len(prompts) else ()
        found.update(dict.fromkeys(pairs(ids, scheme.context_width, prompt, keep[i] if keep is not None else None)))
    return scheme.detect_pairs(list(found), vocab)


def predictions(model: Any, texts: Sequence[Sequence[int]], batch: int = 16) -> list[list[int]]:
    """For each text, the suspect's argmax next-token prediction after each prefix (teacher forcing).

    Texts longer than the model's context are read in consecutive windows (each prediction then sees
    at most one window of prefix, which is all the model could see anyway).
    """
    config = model.config
    context = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048)
    pieces = [(i, s) for i, t in enumerate(texts) for s in range(0, max(len(t), 1), context)]
    flat = _predict(model, [list(texts[i][s:s + context]) for i, s in pieces], batch)
    out: list[list[int]] = [[] for _ in texts]
    for (i, _), pred in zip(pieces, flat, strict=True):
        out[i] += pred
    return out


def _predict(model: Any, texts: Sequence[Sequence[int]], batch: int) -> list[list[int]]:
    out: list[list[int]] = []
    for start in range(0, len(texts), batch):
        chunk = [list(t) for t in texts[start:start + batch]]
        width = max(len(t) for t in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, t in enumerate(chunk):  # right padding: predictions at real positions only
            ids[i, :len(t)] = torch.tensor(t)
            mask[i, :len(t)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        best = logits.argmax(-1)
        out += [best[i, :len(t)].tolist() for i, t in enumerate(chunk)]
    return out


def radioactivity_open(scheme: Scheme, model: Any, texts: Sequence[Sequence[int]], vocab: int,
                       keep: Sequence[Sequence[bool]] | None = None) -> TestResult:
    """Score the suspect's predictions: pair (true context before position t+1, predicted token at t+1).

    ``keep`` (one flag per token of each text) limits scoring to chosen positions, e.g. the steps where
    our own model was uncertain (``watermark.selective``): elsewhere every model predicts the same token.
    """
    return scheme.detect_pairs(predicted_pairs(model, texts, scheme.context_width, keep), vocab)


def predicted_pairs(model: Any, texts: Sequence[Sequence[int]], width: int,
                    keep: Sequence[Sequence[bool]] | None = None) -> list[tuple[tuple[int, ...], int]]:
    """The distinct (true context of ``width`` tokens, suspect's predicted next token) pairs, sorted.

    Computed once, they can be scored under many keys (a null check: keys the suspect never saw).
    """
    predicted = predictions(model, texts)
    found: set[tuple[tuple[int, ...], int]] = set()
    for i, (ids, pred) in enumerate(zip(texts, predicted, strict=True)):
        for t in range(width - 1, len(ids) - 1):  # pred[t] is the guess for position t + 1
            if keep is not None and not keep[i][t + 1]:
                continue
            found.add((tuple(int(x) for x in ids[t - width + 1:t + 1]), int(pred[t])))
    return sorted(found)
