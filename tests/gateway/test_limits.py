"""Token buckets: all-or-nothing reservations, shared cluster budgets, refunds, Retry-After."""

from __future__ import annotations

import threading

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.limits import Limit, MemoryLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_cluster_members_share_one_budget() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock)
    account, cluster = Limit(60, 10), Limit(60, 4)
    taken = [lim.reserve([(f"acct:{a}", account, 1), ("cluster:c", cluster, 1)]).ok for a in "abcdef"]
    assert taken == [True, True, True, True, False, False]  # six accounts, one cluster budget of four
    denied = lim.reserve([("acct:z", account, 1), ("cluster:c", cluster, 1)])
    assert not denied.ok and denied.bucket == "cluster:c" and denied.retry_after == 1.0
    clock.t = 1.0
    assert lim.reserve([("acct:z", account, 1), ("cluster:c", cluster, 1)]).ok


def test_reservations_are_all_or_nothing_and_refunds_restore() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock)
    tokens = Limit(per_minute=6000, burst=1000)
    requests = Limit(per_minute=60, burst=1)
    assert lim.reserve([("tok:a", tokens, 900), ("req:a", requests, 1)]).ok
    # The request bucket refuses: the token bucket must not be charged either.
    assert not lim.reserve([("tok:a", tokens, 50), ("req:a", requests, 1)]).ok
    lim.refund([("tok:a", tokens, 800)])  # the answer used 100 of the 900 reserved
    assert lim.reserve([("tok:a", tokens, 850)]).ok
    assert lim.reserve([("tok:a", tokens, 5000)]).retry_after == float("inf")  # larger than the bucket


def test_concurrent_reservations_never_exceed_the_budget() -> None:
    lim = MemoryLimiter(lambda: 0.0)
    rule = Limit(60, 100)
    granted = []

    def worker() -> None:
        for _ in range(50):
            granted.append(lim.reserve([("acct:a", rule, 1)]).ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        Limit(0, 1)
    assert Limit(60, 10).scaled(0.1) == Limit(6.0, 1.0)


def test_two_replicas_share_exact_limits_through_redis(redis_url: str) -> None:
    from distillguard.gateway.limits import RedisLimiter

    replicas = [RedisLimiter(redis_url, prefix="t1:"), RedisLimiter(redis_url, prefix="t1:")]
    rule = Limit(per_minute=0.6, burst=50)  # refills one token a hundred seconds: none during the test
    granted: list[bool] = []

    def worker(lim: RedisLimiter) -> None:
        for _ in range(40):
            granted.append(lim.reserve([("acct:a", rule, 1), ("cluster:c", Limit(0.6, 60), 1)]).ok)

    threads = [threading.Thread(target=worker, args=(replicas[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50  # 160 attempts over two replicas, exactly the account's budget
    denied = replicas[0].reserve([("acct:a", rule, 1)])
    assert not denied.ok and denied.bucket == "acct:a" and 90 < denied.retry_after <= 100
    replicas[1].refund([("acct:a", rule, 3)])
    assert [replicas[0].reserve([("acct:a", rule, 1)]).ok for _ in range(4)] == [True, True, True, False]
    assert replicas[0].reserve([("acct:b", rule, 51)]).retry_after == float("inf")


def test_unreachable_redis_is_a_clear_error() -> None:
    from distillguard.gateway.limits import RedisLimiter

    with pytest.raises(ConfigError, match="cannot reach Redis"):
        RedisLimiter("redis://127.0.0.1:1/0")


def test_full_buckets_are_swept_so_new_addresses_cannot_grow_memory() -> None:
    clock = Clock()
    lim = MemoryLimiter(clock, sweep_at=100)
    rule = Limit(per_minute=60, burst=20)  # one request leaves a bucket that is full again a second later
    for i in range(10_000):  # a flood from ever-new addresses, 1,000 a second, one request each
        clock.t = i * 0.001
        assert lim.reserve([(f"req:ip:10.0.{i // 256}.{i % 256}", rule, 1.0)]).ok
    assert len(lim) <= 2 * 1000 + 100  # the addresses of about the last second, not all 10,000
    lim.charge([("tok:debtor", Limit(60, 10), 1000.0)])  # a bucket in debt is never swept
    for i in range(5000):
        lim.reserve([(f"x{i}", rule, 1.0)])
    assert lim._level("tok:debtor", Limit(60, 10), clock.t) == -990
