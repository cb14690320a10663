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

import random
from collections.abc import Sequence
from typing import Any

import torch

from distillguard.forensics.stats import TestResult
from distillguard.watermark.base import Scheme, pairs
from distillguard.watermark.prf import context_seed
from distillguard.watermark.selective import model_context, read_windows


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
    return [r.tolist() for r in read_windows(model, texts, lambda logits: logits.argmax(-1), batch)]


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


def green_mass_test(scheme: Any, suspect: Any, reference: Any, texts: Sequence[Sequence[int]],
                    keep: Sequence[Sequence[bool]], n_keys: int = 100_000, seed: int = 0) -> TestResult:
    """Does the suspect put more probability on the key's green tokens than our own model does?

    A stronger open-setting test than counting argmax predictions when the watermarked share of the
    suspect's training data is small: at each kept step of ``texts`` (which must not carry this key's
    mark; our model's plain answers do), the suspect's next-token distribution minus ``reference``'s
    (our model, which never trained on marked text) is summed per context of the scheme's width into
    ``D[c]``; the statistic is ``S(key) = sum_c D[c] · green(key, c)``. Under the null (the suspect never
    saw text marked with this key) the key is exchangeable with keys drawn at random, so the Monte Carlo
    p-value ``(1 + #{S(random key) >= S(key)}) / (n_keys + 1)`` is exact (valid at every level); its
    resolution is ``1 / (n_keys + 1)``. Green-list schemes only.
    """
    if not hasattr(scheme, "gamma"):
        raise ValueError("the green-mass test needs a green-list scheme")
    width = scheme.context_width
    vocab = int(reference.config.vocab_size)
    if int(suspect.config.vocab_size) != vocab:
        raise ValueError("the suspect and our model must share the vocabulary (the watermark's tokenizer)")
    per_context: dict[tuple[int, ...], torch.Tensor] = {}
    diffs = zip(_probabilities(suspect, texts), _probabilities(reference, texts), strict=True)
    for i, (p_suspect, p_ours) in enumerate(diffs):
        ids = texts[i]
        for t in range(width - 1, len(ids) - 1):  # row t is the distribution of token t + 1
            if keep[i][t + 1]:
                context = tuple(int(x) for x in ids[t - width + 1:t + 1])
                d = (p_suspect[t] - p_ours[t]).double()
                per_context[context] = per_context[context] + d if context in per_context else d
    if not per_context:
        return TestResult(0.0, 1.0, 0, "green-mass key-permutation test: no step scored", atom=1.0)
    contexts = sorted(per_context)
    rows = [per_context[c] for c in contexts]
    hashes = [context_seed(1, c) for c in contexts]  # seed(key, c) = key * hash(c), as prf.greenlist seeds
    size = int(vocab * scheme.gamma)

    def statistic(key: int) -> float:
        # prf.greenlist's green set (the first ``size`` of a seeded randperm), without building masks:
        # this runs for every random key, so it is the test's whole cost.
        total = 0.0
        for row, h in zip(rows, hashes, strict=True):
            generator = torch.Generator().manual_seed((key * h) % (2**64 - 1))
            total += float(row[torch.randperm(vocab, generator=generator)[:size]].sum())
        return total

    observed = statistic(scheme.key)
    rng = random.Random(seed)
    exceed = sum(statistic(rng.getrandbits(62)) >= observed for _ in range(n_keys))
    steps = sum(sum(k[1:]) for k in keep)
    return TestResult(observed, (1 + exceed) / (n_keys + 1), steps,
                      f"green-mass key-permutation test against our model, {n_keys} random keys, "
                      f"{len(contexts)} contexts", atom=1 / (n_keys + 1))


def _probabilities(model: Any, texts: Sequence[Sequence[int]], batch: int = 16) -> list[torch.Tensor]:
    """Per text, the model's next-token distribution after each prefix, (len, vocab); texts fit the context."""
    context = model_context(model)
    if any(len(t) > context for t in texts):
        raise ValueError(f"a text is longer than the model's context ({context} tokens); cut it first")
    return read_windows(model, texts, lambda logits: torch.softmax(logits.float(), dim=-1), batch)
