"""The rank-sum test's p-values are the exact null probabilities, checked by enumeration."""

from __future__ import annotations

import itertools

import pytest

from distillguard.stats import rank_sum_test


@pytest.mark.parametrize(("k", "decoys"), [(1, 4), (3, 4), (4, 2)])
def test_p_values_equal_brute_force_counts(k: int, decoys: int) -> None:
    tuples = list(itertools.product(range(decoys + 1), repeat=k))
    for ranks in tuples:
        brute = sum(sum(t) <= sum(ranks) for t in tuples) / len(tuples)
        assert rank_sum_test(list(ranks), decoys).p_value == pytest.approx(brute, rel=1e-12)


def test_the_test_is_valid_at_every_level() -> None:
    tuples = list(itertools.product(range(5), repeat=3))
    p = [rank_sum_test(list(t), 4).p_value for t in tuples]
    for alpha in (0.01, 0.05, 0.1, 0.5):
        assert sum(x <= alpha for x in p) / len(p) <= alpha


def test_far_tails_are_not_rounded_away_and_bad_ranks_are_refused() -> None:
    assert 0 < rank_sum_test([0] * 200, 19).p_value < 1e-250
    with pytest.raises(ValueError, match=r"ranks must lie in 0\.\.19"):
        rank_sum_test([20], 19)
