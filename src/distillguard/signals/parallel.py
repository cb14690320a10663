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

from distillguard.signals import INPUT_COLUMNS, enrich, signals_schema


def enrich_to_signals(batch: pa.RecordBatch) -> pa.Table:
    """One batch of exchanges → the ``signals`` columns.

    Only the exchange columns the table does not keep are dropped here (the text
    is the bulk of what would cross processes); any other column reaches the
    store, which refuses what the table lacks instead of losing it.
    """
    table = pa.Table.from_batches([enrich(batch)])
    names = signals_schema().names
    extra = [c for c in table.column_names if c not in names and c not in INPUT_COLUMNS]
    return table.select([*names, *extra])


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
