"""Where a request's tail comes from: garbage-collection pauses and event-loop lag, as Prometheus histograms.

A request that waits does so because the worker's one thread was busy elsewhere: a
garbage collection (``gc.callbacks`` time each one, by generation) or another callback
holding the event loop (a timer that should fire every ``interval`` seconds measures how
late it runs). Both are exported on ``/metrics`` (``distillguard_gc_pause_seconds``,
``distillguard_event_loop_lag_seconds``), so an operator (and ``benchmarks/gateway_latency.py``)
can tell a collector pause from a busy loop from a slow upstream (#23).

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> monitor = PauseMonitor(registry)
>>> monitor.install()
>>> _ = gc.collect()
>>> monitor.uninstall()
>>> registry.get_sample_value("distillguard_gc_pause_seconds_count", {"generation": "2"}) >= 1
True
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class PauseMonitor:
    """GC pauses (by generation) and event-loop lag of this process, observed into ``registry``."""

    def __init__(self, registry: CollectorRegistry, interval: float = 0.005) -> None:
        self.gc_pause = Histogram("distillguard_gc_pause_seconds", "Garbage-collection pauses by generation.",
                                  ["generation"], registry=registry, buckets=_BUCKETS)
        self.loop_lag = Histogram("distillguard_event_loop_lag_seconds",
                                  "How late a timer due every few milliseconds ran: time the event loop was busy "
                                  "elsewhere.", registry=registry, buckets=_BUCKETS)
        self.interval = interval
        self._gens = [self.gc_pause.labels(str(g)) for g in range(3)]
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._gens[min(int(info.get("generation", 2)), 2)].observe(time.perf_counter() - self._started)
            self._started = 0.0

    def install(self) -> None:
        """Time every collection from now on."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def start_lag_probe(self) -> None:
        """Measure the running event loop's lag until ``uninstall``."""
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.loop_lag.observe(max(0.0, time.perf_counter() - due))
