"""Validate decoded records and group them into batches, in this process or in worker processes.

``validated`` is the one validate-or-quarantine step of ingest: every record,
whatever file or decoder it came from, becomes a row or a ``Bad``. Validation
is pure Python and the costliest part of ingest, so several files are read in
parallel processes (``spawn``: forking a process that holds DuckDB threads is
unsafe). Each worker takes every W-th file and sends its batches through a
bounded queue; the parent reads the queues in file order, so the result is the
same as a serial run and memory stays bounded.

>>> from distillguard.ingest.tables import ACCOUNT_TABLE
>>> records = [Record("a.jsonl", 1, {"account_id": "a1"}, None), Record("a.jsonl", 2, {"account_id": 5}, None)]
>>> (batch,) = batched(records, ACCOUNT_TABLE, size=None)
>>> batch.read, [b.reason for b in batch.bad]
(1, ["field 'account_id' must be a string, got int"])
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest.normalize import RowProblem
from distillguard.ingest.sources import Bad, Record, iter_records
from distillguard.ingest.tables import TableKind

log = logging.getLogger(__name__)
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this, starting workers costs more than it saves


@dataclass(frozen=True)
class Flattened:
    """Rows DuckDB flattens itself from a Parquet file (the columnar decoder): ``select`` with ``params``."""

    path: Path
    select: str
    params: list[Any]
    rows: int


@dataclass
class Batch:
    """Valid rows of one table ready for the store, and the bad rows met on the way.

    ``rows``: rows validated in Python (None: none); ``flattened``: rows DuckDB
    flattens straight from a Parquet file, stored with ``rows`` in one statement.
    """

    rows: pa.Table | None
    bad: list[Bad] = field(default_factory=list)
    flattened: Flattened | None = None

    @property
    def read(self) -> int:
        """Valid rows in the batch."""
        return (self.rows.num_rows if self.rows is not None else 0) + (self.flattened.rows if self.flattened else 0)


def validated(item: Record | Bad, kind: TableKind) -> dict[str, Any] | Bad:
    """One record as a row of ``kind``'s table, or why it is bad."""
    if isinstance(item, Bad):
        return item
    try:
        return kind.row(item)
    except RowProblem as exc:
        return item.bad(str(exc))
    except Exception as exc:  # a bug met on one row: it must not abort the scan, nor go unseen
        log.exception("%s:%d: unexpected error reading the row", item.file, item.line)
        return item.bad(f"internal error reading the row ({type(exc).__name__}: {exc}); please report it")


def batched(items: Iterable[Record | Bad], kind: TableKind, *, size: int | None) -> Iterator[Batch]:
    """Validate ``items`` in order; a batch every ``size`` valid rows (None: one batch), bad rows alongside."""
    rows: list[dict[str, Any]] = []
    bad: list[Bad] = []
    for item in items:
        row = validated(item, kind)
        if isinstance(row, Bad):
            bad.append(row)
            continue
        rows.append(row)
        if size is not None and len(rows) >= size:
            yield Batch(pa.Table.from_pylist(rows, schema=kind.schema), bad)
            rows, bad = [], []
    if rows or bad:
        yield Batch(pa.Table.from_pylist(rows, schema=kind.schema) if rows else None, bad)


def file_batches(path: Path, kind: TableKind, settings: IngestSettings) -> Iterator[Batch]:
    """One file decoded record by record (``sources``), validated and batched."""
    yield from batched(iter_records(path, settings.max_line_bytes), kind, size=settings.batch_rows)


def parallel_batches(
    files: list[Path], kind: TableKind, *, settings: IngestSettings, workers: int | None = None,
) -> Iterator[Batch]:
    """``file_batches`` over ``files`` in order, using worker processes when worth it."""
    workers = min(workers or os.cpu_count() or 1, len(files))
    size = sum(p.stat().st_size for p in files if p.exists())
    if workers < 2 or size < PARALLEL_MIN_BYTES:
        for path in files:
            yield from file_batches(path, kind, settings)
        return
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue(maxsize=2) for _ in range(workers)]
    procs = [ctx.Process(target=_worker, args=(files[k::workers], kind, settings, queues[k]), daemon=True)
             for k in range(workers)]
    for p in procs:
        p.start()
    try:
        for i in range(len(files)):
            q = queues[i % workers]
            while True:
                message, payload = q.get()
                if message == "end":
                    break
                if message == "error":
                    raise InputError(payload)
                yield payload
    finally:
        for p in procs:
            p.kill()
            p.join()


def _worker(files: list[Path], kind: TableKind, settings: IngestSettings, queue: Any) -> None:
    for path in files:
        try:
            for batch in file_batches(path, kind, settings):
                queue.put(("batch", batch))
        except Exception as exc:  # reported to the parent, which would otherwise wait for this file forever
            queue.put(("error", f"cannot read {path}: {type(exc).__name__}: {exc}"))
            return
        queue.put(("end", None))
