"""Behavioural similarity: does the suspect give our model's answers more often than an independent model does?

On the same prompts, count how often the suspect's answer equals our model's and how often a reference
model's does (a model of comparable skill that never saw our outputs). Under the null (the suspect is no
closer to our model than the reference is) the 2×2 table's margins fix a hypergeometric law: Fisher's
exact test, one-sided. Idiosyncratic answers carry most of the signal, so prompts our model gets wrong
are reported apart.

>>> similarity_test(["7", "9", "x"], ["7", "9", "x"], ["7", "8", "y"]).p_value < 0.5
True
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import fisher_exact

from distillguard.models.answers import normalize
from distillguard.stats import TestResult


def similarity_test(ours: Sequence[str], suspect: Sequence[str], reference: Sequence[str]) -> TestResult:
    """Fisher's exact test: the suspect matches ``ours`` more often than ``reference`` does."""
    if not len(ours) == len(suspect) == len(reference):
        raise ValueError("ours, suspect and reference need one answer per prompt each")
    s = sum(normalize(a) == normalize(b) for a, b in zip(ours, suspect, strict=True))
    r = sum(normalize(a) == normalize(b) for a, b in zip(ours, reference, strict=True))
    n = len(ours)
    if n == 0:
        return TestResult(0.0, 1.0, 0, "Fisher exact, one-sided (no prompts)")
    _, p = fisher_exact([[s, n - s], [r, n - r]], alternative="greater")
    return TestResult(round((s - r) / n, 6), float(min(1.0, p)), n,
                      f"Fisher exact, one-sided: suspect agrees on {s} of {n}, reference on {r} of {n}")
