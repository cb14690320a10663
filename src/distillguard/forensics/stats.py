"""The one result shape of every forensic and watermark test, and exact tails to fill it.

Tails are exact (``scipy.stats.binom.sf`` evaluates the binomial survival function
through the regularized incomplete beta function), never a normal approximation:
a p-value of 1e-9 from 200 tokens must be 1e-9, not whatever a z-score says.

>>> binomial_test(60, 100, 0.25).p_value < 1e-12
True
>>> binomial_test(0, 0, 0.25)
TestResult(statistic=0.0, p_value=1.0, n_scored=0, method='binomial exact upper tail, p0=0.25, 0 trials')
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

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


def binomial_test(successes: int, trials: int, p0: float, what: str = "", n_scored: int | None = None) -> TestResult:
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
