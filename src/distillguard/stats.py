"""The one result shape of every forensic and watermark test, and exact tails to fill it.

Below both watermarks and forensics, which share it.

Tails are exact (``scipy.stats.binom.sf`` evaluates the binomial survival function
through the regularized incomplete beta function), never a normal approximation:
a p-value of 1e-9 from 200 tokens must be 1e-9, not whatever a z-score says.

>>> binomial_test(60, 100, p0=0.25).p_value < 1e-12
True
>>> binomial_test(0, 0, p0=0.25)
TestResult(statistic=0.0, p_value=1.0, n_scored=0, method='binomial exact upper tail, p0=0.25, 0 trials')
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom


@dataclass(frozen=True)
class TestResult:
    """``statistic`` (the test's own scale), exact ``p_value`` under the null, items scored, how."""

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float
    n_scored: int
    method: str
    atom: float = field(default=0.0, repr=False, compare=False)  # null probability of the observed value

    def randomized(self, u: float) -> float:
        """The p-value randomized within its atom (``u`` uniform on [0, 1)): exactly uniform under the null.

        An exact test on a discrete statistic is conservative; calibration checks (Kolmogorov-Smirnov)
        need the randomized version. ``binomial_test(3, 4, 0.5).randomized(0.0)`` is P(X > 3) = 1/16.
        """
        return self.p_value - (1.0 - u) * self.atom

    def to_json(self) -> dict[str, float | int | str]:
        return {"statistic": self.statistic, "p_value": self.p_value, "n_scored": self.n_scored,
                "method": self.method}


def binomial_test(successes: int, trials: int, *, p0: float, what: str = "", n_scored: int | None = None) -> TestResult:
    """P(X >= successes) for X ~ Binomial(trials, p0): the exact upper tail; statistic = success share.

    ``n_scored`` is what was scored (tokens), when each contributes several trials (tournament layers).
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be in (0, 1), got {p0}")
    method = f"binomial exact upper tail, p0={p0:g}, {trials} trials{what}"
    if trials == 0:
        return TestResult(0.0, 1.0, 0, method, atom=1.0)
    p = float(binom.sf(successes - 1, trials, p0))
    return TestResult(successes / trials, min(1.0, max(p, 0.0)), trials if n_scored is None else n_scored, method,
                      atom=float(binom.pmf(successes, trials, p0)))


def rank_sum_test(ranks: Sequence[int], n_decoys: int, what: str = "") -> TestResult:
    """P(S <= sum(ranks)) for S the sum of ``len(ranks)`` independent uniforms on 0..``n_decoys``: exact.

    Each rank counts the decoys that score at least as well as the real item
    (0: the real one beat them all); under the null every rank is uniform. The
    distribution of the sum is counted exactly in integers (a convolution by
    prefix sums), so tails far below 1e-300 are not rounded to a normal curve.

    >>> rank_sum_test([0, 0, 0], 19).p_value == 1 / 20**3
    True
    >>> rank_sum_test([10, 9], 19).p_value  # 210 of the 400 rank pairs sum to 19 or less
    0.525
    """
    k, total = len(ranks), int(sum(ranks))
    method = f"rank sum exact lower tail, {k} items against {n_decoys} decoys each{what}"
    if k == 0:
        return TestResult(0.0, 1.0, 0, method, atom=1.0)
    if any(not 0 <= r <= n_decoys for r in ranks):
        raise ValueError(f"ranks must lie in 0..{n_decoys}, got {list(ranks)}")
    ways = [1]  # ways[t]: number of rank tuples summing to t
    for _ in range(k):
        prefix = list(itertools.accumulate(ways, initial=0))
        ways = [prefix[min(t + 1, len(ways))] - prefix[max(0, t - n_decoys)] for t in range(len(ways) + n_decoys)]
    outcomes = (n_decoys + 1) ** k
    return TestResult(total / k, min(1.0, sum(ways[: total + 1]) / outcomes), k, method,
                      atom=ways[total] / outcomes)


def subset_sum_test(values: Sequence[Sequence[int]], size: int, *, observed: int, what: str = "") -> TestResult:
    """P(T >= observed) for T = sum over rows c of the sum of a uniformly random ``size``-subset of
    ``values[c]``, the subsets independent across rows: the exact upper tail (``SubsetSumNull``).

    >>> subset_sum_test([[1, 0, 0, 0]], 1, observed=1).p_value  # the one weight is chosen with probability 1/4
    0.25
    >>> subset_sum_test([[2, 1, 0], [1, 0]], 1, observed=3).p_value  # 2 + 1 only: (1/3)(1/2)
    0.16666666666666666
    """
    return SubsetSumNull(values, size).test(observed, what)


class SubsetSumNull:
    """The exact null distribution of a sum of random-subset sums, computed once, tested many times.

    This is the null of a green-list statistic summed per context (each context's
    green list a random ``size``-subset of the vocabulary, ``values[c]`` the
    integer weights of its tokens). Each row's distribution is counted exactly: a
    subset-sum count over its nonzero weights by number of them chosen, times the
    ways to fill the rest with zeros; rows are then convolved directly (not by FFT,
    whose rounding would swamp tails below about 1e-13). It does not depend on the
    key, so testing many keys (a null check) costs one distribution.
    """

    def __init__(self, values: Sequence[Sequence[int]], size: int) -> None:
        self.rows, self.size = len(values), size
        total, offset = np.ones(1), 0
        for row in values:
            weights = np.asarray(row, dtype=np.int64)
            if not 0 <= size <= len(weights):
                raise ValueError(f"subset size {size} does not fit a row of {len(weights)}")
            dist, low = _row_subset_sums(weights, size)
            total, offset = np.convolve(total, dist), offset + low
        self.probabilities, self.offset = total, offset
        self.upper = np.cumsum(total[::-1])[::-1]  # upper[i] = P(T >= offset + i), summed from the far tail

    def test(self, observed: int, what: str = "") -> TestResult:
        """P(T >= observed), with the atom P(T == observed)."""
        at = observed - self.offset
        p = 1.0 if at <= 0 else float(self.upper[at]) if at < len(self.upper) else 0.0
        atom = float(self.probabilities[at]) if 0 <= at < len(self.probabilities) else 0.0
        return TestResult(float(observed), min(1.0, p), self.rows,
                          f"random-subset sum exact upper tail, {self.rows} rows, subsets of {self.size}{what}",
                          atom=atom)


def _row_subset_sums(weights: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """(probability of each sum from ``low`` upward, ``low``) for a uniform ``size``-subset of ``weights``."""
    nonzero = weights[weights != 0]
    zeros = len(weights) - len(nonzero)
    low, high = int(nonzero[nonzero < 0].sum()), int(nonzero[nonzero > 0].sum())
    most = min(len(nonzero), size)
    ways = np.zeros((most + 1, high - low + 1))  # ways[j, x - low]: j-subsets of the nonzero weights summing to x
    ways[0, -low] = 1.0
    for q in nonzero:
        before = ways[:-1].copy()
        if q > 0:
            ways[1:, q:] += before[:, :-q]
        else:
            ways[1:, :q] += before[:, -q:]
    fill = np.array([math.comb(zeros, size - j) / math.comb(len(weights), size) if size - j <= zeros else 0.0
                     for j in range(most + 1)])
    return fill @ ways, low
