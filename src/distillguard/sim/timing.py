"""Arrival times (epoch seconds) for each timing model of the simulator.

Human traffic comes in sessions with a diurnal and weekly rhythm in the
account's local time; cron jobs tick with jitter; evaluation harnesses run in
bursts; harvesters either load-balance one request stream over their accounts
round-robin or fire synchronized bursts from all accounts at once.
"""

from __future__ import annotations

import numpy as np

DAY = 86400.0
# Relative activity by local hour for people (low at night, peaks midday/evening).
_HUMAN_HOURS = np.array([0.15, 0.08, 0.05, 0.04, 0.04, 0.08, 0.25, 0.5, 0.8, 1.0, 1.0, 1.0,
                         0.95, 1.0, 1.0, 0.95, 0.9, 0.85, 0.9, 1.0, 1.0, 0.85, 0.6, 0.3])
_WORK_HOURS = np.array([0.02] * 7 + [0.3, 0.9, 1.0, 1.0, 1.0, 0.7, 1.0, 1.0, 1.0, 0.9, 0.6, 0.3]
                       + [0.1] * 5)


def _hour_weights(profile: np.ndarray, weekday_bias: float, start: float, days: float,
                  tz_hours: float) -> tuple[np.ndarray, np.ndarray]:
    hours = np.arange(int(days * 24)) * 3600.0 + start
    local = hours + tz_hours * 3600.0
    h = ((local // 3600) % 24).astype(int)
    dow = ((local // DAY + 3) % 7).astype(int)  # 1970-01-01 was a Thursday
    w = profile[h] * np.where(dow >= 5, 1.0 - weekday_bias, 1.0)
    return hours, w / w.sum()


def human(rng: np.random.Generator, n: int, *, start: float, days: float, tz_hours: float,
          work: bool = False, session_mean: float = 4.0) -> np.ndarray:
    """``n`` times in sessions (gaps of tens of seconds) at plausible local hours."""
    if n <= 0:
        return np.empty(0)
    hours, w = _hour_weights(_WORK_HOURS if work else _HUMAN_HOURS, 0.7 if work else 0.2,
                             start, days, tz_hours)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(1 + rng.poisson(session_mean - 1))
    sizes[-1] -= sum(sizes) - n
    starts = rng.choice(hours, size=len(sizes), p=w) + rng.uniform(0, 3600, len(sizes))
    out = []
    for s0, k in zip(starts, sizes, strict=True):
        gaps = rng.lognormal(np.log(45.0), 0.9, k - 1)
        out.append(s0 + np.concatenate([[0.0], np.cumsum(gaps)]))
    return np.sort(np.concatenate(out))


def cron(rng: np.random.Generator, n: int, *, start: float, days: float) -> np.ndarray:
    """Evenly spaced jobs with small jitter, all day long."""
    step = days * DAY / max(n, 1)
    return np.sort(start + np.arange(n) * step + rng.uniform(0, 0.2 * step, n))


def bursts(rng: np.random.Generator, n: int, *, start: float, days: float, run_size: int = 150) -> np.ndarray:
    """Benchmark runs: a few bursts per week, requests ~1 s apart inside a run."""
    runs = max(1, n // run_size)
    run_starts = start + rng.uniform(0, days * DAY - 3 * 3600, runs)
    idx = np.arange(n) % runs
    within = np.zeros(n)
    for r in range(runs):
        k = int((idx == r).sum())
        within[idx == r] = np.cumsum(rng.lognormal(np.log(1.2), 0.5, k))
    return np.sort(run_starts[idx] + within)


def round_robin(rng: np.random.Generator, counts: np.ndarray, *, start: float, days: float,
                active_from: np.ndarray) -> list[np.ndarray]:
    """One load-balanced stream dealt to accounts in turn: regular per-account spacing."""
    out = []
    span = days * DAY
    for k, a0 in zip(counts, active_from, strict=True):
        begin = start + a0
        step = max(start + span - begin, 3600.0) / max(k, 1)
        jitter = rng.uniform(-0.03, 0.03, k) * step
        out.append(np.clip(begin + rng.uniform(0, step) + np.arange(k) * step + jitter,
                           begin, start + span - 1))
    return out


def synchronized(rng: np.random.Generator, counts: np.ndarray, *, start: float, days: float,
                 active_from: np.ndarray, burst_every: float = 1800.0) -> list[np.ndarray]:
    """All accounts fire in the same short windows (lockstep bursts)."""
    n_bursts = max(1, int(days * DAY / burst_every))
    burst_times = np.sort(start + rng.uniform(0, days * DAY - 600, n_bursts))
    out = []
    for k, a0 in zip(counts, active_from, strict=True):
        eligible = burst_times[burst_times >= start + a0]
        if len(eligible) == 0:
            eligible = burst_times[-1:]
        chosen = rng.choice(eligible, size=k, replace=True)
        out.append(np.sort(chosen + rng.uniform(0, 20.0, k)))
    return out
