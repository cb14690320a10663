"""Every registered scheme, under the null (text that never saw the key): exact p-values, never anti-conservative."""

from __future__ import annotations

import random

import pytest
from scipy.stats import kstest

from distillguard.watermark.base import load_scheme, schemes

SCHEMES = schemes()  # every registered scheme, so each passes the same conformance checks


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
    randomized = [r.randomized(rng.random()) for r in results]
    assert kstest(randomized, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_detection_is_deterministic_and_ignores_prompt_copies(name: str) -> None:
    scheme = load_scheme(name, {"key": 5})
    text = list(range(10, 70))
    first = scheme.detect(text, 500)
    assert scheme.detect(text, 500) == first
    copied = scheme.detect(text, 500, prompt_ids=text)  # the whole answer copies the prompt: nothing to score
    assert copied.n_scored == 0 and copied.p_value == 1.0


def test_randomized_p_value_spans_the_atom() -> None:
    from distillguard.stats import binomial_test

    r = binomial_test(3, 4, p0=0.5)
    assert r.randomized(0.0) == pytest.approx(1 / 16) and r.randomized(1.0) == pytest.approx(r.p_value)
    assert binomial_test(0, 0, p0=0.5).randomized(0.3) == pytest.approx(0.3)


def test_entropy_selection_scores_only_kept_positions_and_stays_exact() -> None:
    """A key-independent choice of positions (the model's entropy) leaves a valid binomial test."""
    scheme = load_scheme("greenlist", {"key": 11, "context_width": 2})
    rng = random.Random(3)
    results = []
    for _ in range(400):
        text = [rng.randrange(500) for _ in range(80)]
        keep = [rng.random() < 0.3 for _ in text]
        results.append(scheme.detect(text, 500, keep=keep))
        assert results[-1].n_scored <= sum(keep)
    assert kstest([r.randomized(rng.random()) for r in results], "uniform").pvalue > 1e-3
