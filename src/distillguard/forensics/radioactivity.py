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
from dataclasses import dataclass
from typing import Any

import torch

from distillguard.stats import SubsetSumNull, TestResult
from distillguard.watermark.base import Scheme, pairs
from distillguard.watermark.prf import greenlist
from distillguard.watermark.selective import model_context, read_windows


def radioactivity_from_tokens(scheme: Scheme, texts: Sequence[Sequence[int]], *, vocab: int,
                              prompts: Sequence[Sequence[int]] = (),
                              keep: Sequence[Sequence[bool]] | None = None) -> TestResult:
    """The scheme's test on a whole sample: each distinct (context, token) pair of all texts once
    (only at kept positions, when ``keep`` gives one flag per token of each text)."""
    found: dict[tuple[tuple[int, ...], int], None] = {}
    for i, ids in enumerate(texts):
        prompt = prompts[i] if i < len(prompts) else ()
        found.update(dict.fromkeys(pairs(ids, scheme.context_width, prompt_ids=prompt,
                                         keep=keep[i] if keep is not None else None)))
    return scheme.detect_pairs(list(found), vocab)


def predictions(model: Any, texts: Sequence[Sequence[int]], batch: int = 16) -> list[list[int]]:
    """For each text, the suspect's argmax next-token prediction after each prefix (teacher forcing).

    Texts longer than the model's context are read in consecutive windows (each prediction then sees
    at most one window of prefix, which is all the model could see anyway).
    """
    return [r.tolist() for r in read_windows(model, texts, reduce=lambda logits: logits.argmax(-1), batch=batch)]


def radioactivity_open(scheme: Scheme, model: Any, *, texts: Sequence[Sequence[int]], vocab: int,
                       keep: Sequence[Sequence[bool]] | None = None) -> TestResult:
    """Score the suspect's predictions: pair (true context before position t+1, predicted token at t+1).

    ``keep`` (one flag per token of each text) limits scoring to chosen positions, e.g. the steps where
    our own model was uncertain (``watermark.selective``): elsewhere every model predicts the same token.
    """
    return scheme.detect_pairs(predicted_pairs(model, texts, width=scheme.context_width, keep=keep), vocab)


def predicted_pairs(model: Any, texts: Sequence[Sequence[int]], *, width: int,
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


def green_mass_test(scheme: Any, suspect: Any, *, reference: Any, texts: Sequence[Sequence[int]],
                    keep: Sequence[Sequence[bool]], resolution: int = 20_000) -> TestResult:
    """Does the suspect put more probability on the key's green tokens than our own model does?

    A stronger open-setting test than counting argmax predictions when the watermarked share of the
    suspect's training data is small; see ``GreenMass``. ``texts`` must not carry this key's mark
    (our model's plain answers do), ``keep`` flags the steps to score (one flag per token).
    """
    if not hasattr(scheme, "gamma"):
        raise ValueError("the green-mass test needs a green-list scheme")
    mass = green_mass(suspect, reference, texts=texts, keep=keep, width=scheme.context_width, gamma=scheme.gamma,
                      resolution=resolution)
    return mass.test(scheme)


@dataclass(frozen=True)
class GreenMass:
    """The suspect's next-token probabilities minus our model's, summed per context, on a lattice.

    ``S(key) = sum_c D[c] · green(key, c)``. Under the null (the suspect never saw text
    marked with this key) each context's green list is a uniformly random ``gamma``-share
    of the vocabulary, independent across contexts: the model behind the binomial test
    too. ``D`` is rounded to multiples of ``unit`` (about ``resolution`` steps in all; a
    key-independent rounding, so the test of the rounded statistic stays exact) and the
    null distribution of ``S`` is counted exactly (``stats.SubsetSumNull``), once for
    every key: p-values far below any Monte Carlo resolution, and a null check over
    many random keys costs little.
    """

    contexts: list[tuple[int, ...]]
    weights: list[torch.Tensor]
    unit: float
    steps: int
    vocab: int
    width: int
    gamma: float
    null: SubsetSumNull | None

    def test(self, scheme: Any) -> TestResult:
        """The exact upper-tail p-value of ``S`` under ``scheme``'s key (its width and gamma must match)."""
        if (scheme.context_width, scheme.gamma) != (self.width, self.gamma):
            raise ValueError(f"computed for context width {self.width} and gamma {self.gamma}, not "
                             f"{scheme.context_width} and {scheme.gamma}")
        if self.null is None:
            return TestResult(0.0, 1.0, self.steps, "green-mass exact test: no difference from our model", atom=1.0)
        observed = sum(int(w[greenlist(scheme.key, c, vocab=self.vocab, gamma=self.gamma)].sum())
                       for w, c in zip(self.weights, self.contexts, strict=True))
        result = self.null.test(observed, f", {len(self.contexts)} contexts")
        return TestResult(observed * self.unit, result.p_value, self.steps,
                          f"green-mass test against our model (exact; {result.method})", atom=result.atom)


def green_mass(suspect: Any, reference: Any, *, texts: Sequence[Sequence[int]], keep: Sequence[Sequence[bool]],
               width: int, gamma: float, resolution: int = 20_000) -> GreenMass:
    """``GreenMass`` of ``suspect`` against ``reference`` (our model) at the kept steps of ``texts``."""
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
    steps = sum(sum(k[1:]) for k in keep)
    contexts = sorted(per_context)
    total = sum(float(per_context[c].abs().sum()) for c in contexts)
    if total == 0.0:
        return GreenMass(contexts, [], 0.0, steps, vocab, width, gamma, None)
    unit = total / resolution
    weights = [torch.round(per_context[c] / unit).long() for c in contexts]
    return GreenMass(contexts, weights, unit, steps, vocab, width, gamma,
                     SubsetSumNull([w.tolist() for w in weights], int(vocab * gamma)))


def _probabilities(model: Any, texts: Sequence[Sequence[int]], batch: int = 16) -> list[torch.Tensor]:
    """Per text, the model's next-token distribution after each prefix, (len, vocab); texts fit the context."""
    context = model_context(model)
    if any(len(t) > context for t in texts):
        raise ValueError(f"a text is longer than the model's context ({context} tokens); cut it first")
    return read_windows(model, texts, reduce=lambda logits: torch.softmax(logits.float(), dim=-1), batch=batch)
