"""Run ``enrich`` over a stream of batches in worker processes, keeping order and memory bounded.

Enrichment is pure Python per exchange and the costliest stage, so on large
inputs it runs in ``workers`` processes (``spawn``: the parent holds DuckDB
threads, which make ``fork`` unsafe). At most ``2 * workers`` batches are in
flight; results come back in input order, so the output equals a serial run.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from distillguard.schema import SIGNALS
from distillguard.signals import enrich


def enrich_to_signals(batch: pa.RecordBatch) -> pa.Table:
    """One batch of exchanges → the ``signals`` columns."""
    return pa.Table.from_batches([enrich(batch)]).select(SIGNALS.names)


def enrich_batches(batches: Iterable[pa.RecordBatch], workers: int) -> Iterator[pa.Table]:
    """``enrich_to_signals`` over ``batches``, in order, in ``workers`` processes (1: in this one)."""
    if workers <= 1:
        for batch in batches:
            yield enrich_to_signals(batch)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        pending: deque[Future[pa.Table]] = deque()
        for batch in batches:
            pending.append(pool.submit(enrich_to_signals, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
