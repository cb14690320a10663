"""Rate limits per account and per cluster: token buckets with reserve-then-refund.

A request reserves one request and ``prompt + max_tokens`` tokens from every
bucket that applies to it (its account's, and its cluster's, which all the
cluster's accounts share) before the upstream call, all or nothing; after the
call the unused part of the token reservation is refunded. A denied
reservation says how long to wait (``Retry-After``). Buckets refill
continuously at ``per_minute / 60`` per second up to ``burst``.

This is the in-memory backend (one gateway process); the Redis backend gives
several replicas the same buckets.

>>> lim = MemoryLimiter(clock=lambda: 0.0)
>>> rule = Limit(per_minute=60, burst=2)
>>> [lim.reserve([("acct:a", rule, 1)]).ok for _ in range(3)]
[True, True, False]
>>> lim.reserve([("acct:a", rule, 1)]).retry_after
1.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from distillguard.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: float  # bucket capacity

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst <= 0:
            raise ConfigError("rate limits must be positive")

    def scaled(self, factor: float) -> Limit:
        """A tighter (``factor`` < 1) version, for throttled subjects."""
        return Limit(self.per_minute * factor, max(self.burst * factor, 1.0))


@dataclass(frozen=True)
class Reservation:
    ok: bool
    retry_after: float = 0.0  # seconds until the reservation would succeed
    bucket: str | None = None  # the bucket that refused


Charge = tuple[str, Limit, float]  # (bucket key, its limit, amount)


class MemoryLimiter:
    """Token buckets in this process, thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, time of last update)
        self._lock = threading.Lock()

    def _level(self, key: str, limit: Limit, now: float) -> float:
        tokens, last = self._buckets.get(key, (limit.burst, now))
        return min(limit.burst, tokens + (now - last) * limit.per_minute / 60.0)

    def reserve(self, charges: Sequence[Charge]) -> Reservation:
        """Take every charge, or none of them and say when to retry."""
        with self._lock:
            now = self.clock()
            levels = [self._level(key, limit, now) for key, limit, _ in charges]
            for (key, limit, amount), level in zip(charges, levels, strict=True):
                if amount > limit.burst:
                    return Reservation(False, float("inf"), key)  # can never fit: the caller answers 400/429
                if level < amount:
                    wait = (amount - level) * 60.0 / limit.per_minute
                    return Reservation(False, round(wait, 3), key)
            for (key, _, amount), level in zip(charges, levels, strict=True):
                self._buckets[key] = (level - amount, now)
            return Reservation(True)

    def refund(self, charges: Sequence[Charge]) -> None:
        """Give back unused amounts (never above a bucket's capacity)."""
        with self._lock:
            now = self.clock()
            for key, limit, amount in charges:
                if amount > 0:
                    self._buckets[key] = (min(limit.burst, self._level(key, limit, now) + amount), now)
