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
