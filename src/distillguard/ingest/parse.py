"""Parse and validate exchange files into Arrow batches, in this process or in workers.

Validation is pure Python and the costliest part of ingest, so several files are
parsed in parallel processes (``spawn``: forking a process that holds DuckDB
threads is unsafe). Each worker takes every W-th file and sends its batches
through a bounded queue; the parent reads the queues in file order, so the
result is the same as a serial run and memory stays bounded.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest.normalize import RowProblem
from distillguard.ingest.rows import exchange_row
from distillguard.ingest.sources import Bad, Record, iter_records
from distillguard.schema import EXCHANGES

log = logging.getLogger(__name__)
PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this, starting workers costs more than it saves


@dataclass
class Parsed:
    """One batch of valid rows (may be empty) and the bad rows met on the way."""

    table: pa.Table | None
    bad: list[Bad] = field(default_factory=list)


def parse_file(path: Path, settings: IngestSettings) -> Iterator[Parsed]:
    """Batches of validated rows of one file, bad rows alongside."""
    rows: list[dict[str, Any]] = []
    bad: list[Bad] = []
    for item in iter_records(path, settings.max_line_bytes):
        row = validated(item)
        if isinstance(row, Bad):
            bad.append(row)
            continue
        rows.append(row)
        if len(rows) >= settings.batch_rows:
            yield Parsed(pa.Table.from_pylist(rows, schema=EXCHANGES), bad)
            rows, bad = [], []
    if rows or bad:
        yield Parsed(pa.Table.from_pylist(rows, schema=EXCHANGES) if rows else None, bad)


def validated(item: Record | Bad) -> dict[str, Any] | Bad:
    """One record as a row of ``exchanges`` (with its source file and line), or why it is bad."""
    if isinstance(item, Bad):
        return item
    try:
        row = exchange_row(item.value, item.raw, item.notes)
    except RowProblem as exc:
        return item.bad(str(exc))
    except Exception as exc:  # a bug met on one row: it must not abort the scan, nor go unseen
        log.exception("%s:%d: unexpected error reading the row", item.file, item.line)
        return item.bad(f"internal error reading the row ({type(exc).__name__}: {exc}); please report it")
    row["source_file"], row["source_line"] = item.file, item.line
    return row


def parse_files(files: list[Path], settings: IngestSettings, workers: int | None = None) -> Iterator[Parsed]:
    """``parse_file`` over ``files`` in order, using worker processes when worth it."""
    workers = min(workers or os.cpu_count() or 1, len(files))
    size = sum(p.stat().st_size for p in files if p.exists())
    if workers < 2 or size < PARALLEL_MIN_BYTES:
        for path in files:
            yield from parse_file(path, settings)
        return
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue(maxsize=2) for _ in range(workers)]
    procs = [ctx.Process(target=_worker, args=(files[k::workers], settings, queues[k]), daemon=True)
             for k in range(workers)]
    for p in procs:
        p.start()
    try:
        for i in range(len(files)):
            q = queues[i % workers]
            while True:
                kind, payload = q.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise InputError(payload)
                yield payload
    finally:
        for p in procs:
            p.kill()
            p.join()


def _worker(files: list[Path], settings: IngestSettings, queue: Any) -> None:
    for path in files:
        try:
            for parsed in parse_file(path, settings):
                queue.put(("batch", parsed))
        except Exception as exc:  # reported to the parent, which would otherwise wait for this file forever
            queue.put(("error", f"cannot read {path}: {type(exc).__name__}: {exc}"))
            return
        queue.put(("end", None))
