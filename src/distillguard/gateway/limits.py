"""Rate limits per account and per cluster: token buckets with reserve-then-refund.

A request reserves one request and ``prompt + max_tokens`` tokens from every
bucket that applies to it (its account's, and its cluster's, which all the
cluster's accounts share) before the upstream call, all or nothing; after the
call the unused part of the token reservation is refunded, and usage beyond it
is charged (``charge``): the bucket goes into debt, which later requests wait
out, so a reservation never caps what an answer costs. A denied
reservation says how long to wait (``Retry-After``). Buckets refill
continuously at ``per_minute / 60`` per second up to ``burst``.

``MemoryLimiter`` serves one gateway process; ``RedisLimiter`` gives several
replicas the same buckets (``redis_url`` in the gateway settings).

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
from typing import Any, Protocol

from distillguard.errors import ConfigError, DistillGuardError


class LimiterUnavailable(DistillGuardError):
    """The limit backend (Redis) did not answer; the gateway fails closed or open by its settings."""


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


class Limiter(Protocol):
    """What the gateway needs from a limit backend."""

    def reserve(self, charges: Sequence[Charge]) -> Reservation: ...

    def refund(self, charges: Sequence[Charge]) -> None: ...

    def charge(self, charges: Sequence[Charge]) -> None: ...


class MemoryLimiter:
    """Token buckets in this process, thread-safe.

    A bucket that has refilled to its capacity is the same as no bucket, so such buckets are swept
    away whenever the table has doubled since the last sweep: memory follows the subjects active
    within a refill time (a flood from ever-new client addresses cannot grow it without bound).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, sweep_at: int = 10_000) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float, Limit]] = {}  # key → (tokens, last update, its limit)
        self._lock = threading.Lock()
        self._sweep_at = self._min_sweep = sweep_at

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, limit: Limit, now: float) -> float:
        tokens, last, _ = self._buckets.get(key, (limit.burst, now, limit))
        return min(limit.burst, tokens + (now - last) * limit.per_minute / 60.0)

    def _set(self, key: str, tokens: float, now: float, limit: Limit) -> None:
        self._buckets[key] = (tokens, now, limit)
        if len(self._buckets) >= self._sweep_at:
            self._buckets = {k: v for k, v in self._buckets.items()
                             if v[0] + (now - v[1]) * v[2].per_minute / 60.0 < v[2].burst}
            self._sweep_at = max(self._min_sweep, 2 * len(self._buckets))

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
            for (key, limit, amount), level in zip(charges, levels, strict=True):
                self._set(key, level - amount, now, limit)
            return Reservation(True)

    def refund(self, charges: Sequence[Charge]) -> None:
        """Give back unused amounts (never above a bucket's capacity)."""
        with self._lock:
            now = self.clock()
            for key, limit, amount in charges:
                if amount > 0:
                    self._set(key, min(limit.burst, self._level(key, limit, now) + amount), now, limit)

    def charge(self, charges: Sequence[Charge]) -> None:
        """Take amounts whatever the level (usage beyond a reservation): a bucket may go into debt."""
        with self._lock:
            now = self.clock()
            for key, limit, amount in charges:
                if amount > 0:
                    self._set(key, self._level(key, limit, now) - amount, now, limit)


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local levels = {}
for i = 1, #KEYS do
  local rate, burst, amount = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]) or burst, tonumber(v[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if amount > burst then return {0, 'inf', i} end
  if level < amount then return {0, tostring((amount - level) / rate), i} end
  levels[i] = level
end
for i = 1, #KEYS do
  local rate, burst, amount = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - amount), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(burst / rate) + 60)
end
return {1, '0', 0}
"""

_REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for i = 1, #KEYS do
  local rate, burst, amount = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]) or burst, tonumber(v[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - ts) * rate + amount)
  redis.call('HSET', KEYS[i], 'tokens', tostring(level), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(burst / rate) + 60)
end
return 1
"""

_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for i = 1, #KEYS do
  local rate, burst, amount = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]) or burst, tonumber(v[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - ts) * rate) - amount
  redis.call('HSET', KEYS[i], 'tokens', tostring(level), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil((burst - level) / rate) + 60)
end
return 1
"""


class RedisLimiter:
    """The same buckets in Redis, so several gateway replicas share exact limits.

    Each reservation is one Lua script (atomic in Redis, all buckets or none),
    timed by the Redis server's clock so replicas with skewed clocks agree.
    """

    def __init__(self, url: str, prefix: str = "distillguard:limit:", timeout: float = 1.0) -> None:
        import redis

        try:  # a Redis that stops answering costs a request ``timeout`` seconds, never the event loop forever
            self.redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            self.redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise ConfigError(f"cannot reach Redis at {url}: {exc}") from exc
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE)
        self._refund = self.redis.register_script(_REFUND)
        self._charge = self.redis.register_script(_CHARGE)

    def _args(self, charges: Sequence[Charge]) -> tuple[list[str], list[float]]:
        keys = [self.prefix + key for key, _, _ in charges]
        args: list[float] = []
        for _, limit, amount in charges:
            args += [limit.per_minute / 60.0, limit.burst, amount]
        return keys, args

    def _call(self, script: Any, charges: Sequence[Charge]) -> Any:
        import redis

        keys, args = self._args(charges)
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:  # translated at the boundary: the gateway decides what it means
            raise LimiterUnavailable(f"Redis limits unavailable: {exc}") from exc

    def reserve(self, charges: Sequence[Charge]) -> Reservation:
        if not charges:
            return Reservation(True)
        ok, wait, index = self._call(self._reserve, charges)
        if int(ok):
            return Reservation(True)
        text = wait.decode() if isinstance(wait, bytes) else str(wait)
        return Reservation(False, float("inf") if text == "inf" else round(float(text), 3),
                           charges[int(index) - 1][0])

    def refund(self, charges: Sequence[Charge]) -> None:
        charges = [c for c in charges if c[2] > 0]
        if charges:
            self._call(self._refund, charges)

    def charge(self, charges: Sequence[Charge]) -> None:
        charges = [c for c in charges if c[2] > 0]
        if charges:
            self._call(self._charge, charges)
