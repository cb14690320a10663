"""Every registered scheme, under the null (text that never saw the key): exact p-values, never anti-conservative."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binom, kstest

from distillguard.watermark.base import SCHEMES, _load_all, load_scheme

_load_all()


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_p_values_under_the_null_are_calibrated(name: str) -> None:
    scheme = load_scheme(name, {"key": 20261128})
    rng = random.Random(7)
    vocab = 500
    results = [scheme.detect([rng.randrange(vocab) for _ in range(60)], vocab) for _ in range(400)]
    # The exact test is conservative (discrete): P(p <= a) <= a at every level.
    for a in (0.01, 0.05, 0.2, 0.5):
        share = sum(r.p_value <= a for r in results) / len(results)
        assert share <= a + 3 * (a * (1 - a) / len(results)) ** 0.5
    # Randomized within the atom of the observed count, the p-values are uniform (Kolmogorov-Smirnov).
    randomized = []
    for r in results:
        p0 = float(r.method.split("p0=")[1].split(",")[0])
        trials = int(r.method.split(" trials")[0].rsplit(" ", 1)[1])
        k = round(r.statistic * trials)
        randomized.append(binom.sf(k, trials, p0) + rng.random() * binom.pmf(k, trials, p0))
    assert kstest(randomized, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_detection_is_deterministic_and_ignores_prompt_copies(name: str) -> None:
    scheme = load_scheme(name, {"key": 5})
    text = list(range(10, 70))
    first = scheme.detect(text, 500)
    assert scheme.detect(text, 500) == first
    copied = scheme.detect(text, 500, prompt_ids=text)  # the whole answer copies the prompt: nothing to score
    assert copied.n_scored == 0 and copied.p_value == 1.0
