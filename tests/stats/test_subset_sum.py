"""The random-subset sum tail (green-mass null) equals brute-force enumeration and is valid."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from distillguard.stats import subset_sum_test


def _brute_force(values: list[list[int]], size: int, observed: int) -> tuple[float, float]:
    """(P(T >= observed), P(T == observed)) by listing every combination of subsets."""
    per_row = [[sum(c) for c in itertools.combinations(row, size)] for row in values]
    outcomes = list(itertools.product(*per_row))
    at_least = sum(sum(o) >= observed for o in outcomes) / len(outcomes)
    equal = sum(sum(o) == observed for o in outcomes) / len(outcomes)
    return at_least, equal


@pytest.mark.parametrize("seed", range(12))
def test_equals_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 3)
    values = [[rng.choice([0, 0, 0, rng.randint(-5, 5)]) for _ in range(rng.randint(size, 7))]
              for _ in range(rng.randint(1, 3))]
    for observed in range(-12, 13, 3):
        p, atom = _brute_force(values, size, observed)
        result = subset_sum_test(values, size, observed=observed)
        assert result.p_value == pytest.approx(p, rel=1e-12, abs=1e-15)
        assert result.atom == pytest.approx(atom, rel=1e-12, abs=1e-15)


def test_valid_at_every_level_under_the_null() -> None:
    """Green lists drawn at random: P(p <= a) <= a, and the randomized p-values are uniform."""
    rng = np.random.default_rng(0)
    values = [list(rng.integers(-20, 21, size=40) * (rng.random(40) < 0.3)) for _ in range(6)]
    size = 10
    ps, randomized = [], []
    for _ in range(2000):
        observed = sum(int(np.sum(np.asarray(row)[rng.permutation(40)[:size]])) for row in values)
        r = subset_sum_test(values, size, observed=observed)
        ps.append(r.p_value)
        randomized.append(r.randomized(float(rng.random())))
    for level in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(np.asarray(ps) <= level) <= level + 3 * np.sqrt(level * (1 - level) / 2000)
    from scipy.stats import kstest
    assert kstest(randomized, "uniform").pvalue > 1e-3


def test_far_tail_is_positive_and_tiny() -> None:
    values = [[3] + [0] * 511 for _ in range(60)]  # each row: the weight is green with probability 1/4
    p = subset_sum_test(values, 128, observed=180).p_value  # all 60 green: (1/4)^60
    assert p == pytest.approx(0.25**60, rel=1e-9)


def test_rejects_a_subset_larger_than_a_row() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        subset_sum_test([[1, 2]], 3, observed=0)
