"""Ingest a traffic directory into the store: one reader pipeline, bad rows in one sink.

```
 traffic dir
  │ find files     sources.find_files: exchanges (required), accounts, events;
  ▼                JSONL (plain, .gz, .zst) or Parquet, one file or a folder of shards
 decode records    sources.iter_records: JSONL lines (lines, clip, salvage), Parquet rows ──┐
  │ ┄ columnar     reader: DuckDB flattens a Parquet exchanges file of the usual layout     │
  │                from its typed columns (columnar); only its odd rows go on as records    │
  ▼                                                                                         │
 validate and      batches.validated: the table's TableKind.row (rows, normalize) ──────────┤ Bad
  │ normalize                                                                               │
  ▼                                                                                         │
 batch             batches: per file; in worker processes for large runs, in file order     │
  ▼                                                                                         ▼
 store             write.write_batch: exchanges first wins,            quarantine: one sink
                   accounts and events last wins                       (file, line, reason)
```

Memory stays bounded whatever the file size: records stream, batches hold
``batch_rows`` rows, and exchanges are merged by ``exchange_id`` in DuckDB
(which spills to disk), so re-ingesting the same data adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import duckdb
import pyarrow as pa

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest.batches import Batch, file_batches
from distillguard.ingest.quarantine import Quarantine
from distillguard.ingest.reader import read_table
from distillguard.ingest.sources import find_files
from distillguard.ingest.tables import EXCHANGE_TABLE, TABLES, TableKind
from distillguard.ingest.write import write_batch
from distillguard.store import Store

__all__ = ["IngestReport", "ingest_traffic_dir"]

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did; ``quarantined`` counts rows of every kind."""

    files: int
    exchanges_read: int
    exchanges_added: int
    duplicates: int
    quarantined: int
    accounts: int
    events: int


def ingest_traffic_dir(
    traffic_dir: Path, store: Store, *, settings: IngestSettings | None = None,
    progress: Progress | None = None, columnar: bool = True,
    select: Callable[[dict[str, list[Path]]], dict[str, list[Path]]] | None = None,
) -> IngestReport:
    """Ingest every table of ``traffic_dir`` into ``store``; return counts.

    ``progress`` is called with the number of exchanges of each batch stored.
    ``columnar`` False reads every Parquet row in Python, the reference the
    columnar decoder is tested against. ``select`` picks, from each table's files,
    the ones to read (an incremental scan's ledger: the files not read before).
    """
    settings = settings or IngestSettings()
    files = _table_files(Path(traffic_dir))
    if select is not None:
        files = select(files)
    sink = Quarantine(store, settings.excerpt_chars)
    sink.forget(chain.from_iterable(files.values()))
    counts: dict[str, tuple[int, int]] = {}
    for kind in TABLES:
        batches = read_table(kind, files[kind.name], con=store.con, settings=settings, columnar=columnar)
        counts[kind.name] = _write_all(kind, batches, store=store, sink=sink, settings=settings,
                                       progress=progress if kind is EXCHANGE_TABLE else None)
    sink.flush()
    read, added = counts["exchanges"]
    report = IngestReport(files=sum(map(len, files.values())), exchanges_read=read, exchanges_added=added,
                          duplicates=read - added, quarantined=sink.count, accounts=counts["accounts"][0],
                          events=counts["events"][0])
    log.info("ingest %s: %s", traffic_dir, report)
    return report


def _table_files(traffic_dir: Path) -> dict[str, list[Path]]:
    """Each table's files in ``traffic_dir``; a directory without exchanges is refused."""
    if not traffic_dir.exists():
        raise InputError(f"traffic directory not found: {traffic_dir}")
    if not traffic_dir.is_dir():
        raise InputError(f"not a directory: {traffic_dir}")
    files = {kind.name: find_files(traffic_dir, kind.name) for kind in TABLES}
    if not files[EXCHANGE_TABLE.name]:
        raise InputError(
            f"no exchanges in {traffic_dir}: expected exchanges.jsonl[.gz|.zst], "
            "exchanges.parquet or a folder exchanges/ of such shards"
        )
    return files


def _write_all(
    kind: TableKind, batches: Iterable[Batch], *, store: Store, sink: Quarantine, settings: IngestSettings,
    progress: Progress | None,
) -> tuple[int, int]:
    """Write each batch, then quarantine its bad rows; return (valid rows read, rows added).

    A columnar batch DuckDB fails on is rolled back and its file read record by record instead.
    """
    read = added = 0
    for batch in batches:
        try:
            added += write_batch(store, kind, batch)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if batch.flattened is None:
                raise
            log.info("%s: read record by record (%s)", batch.flattened.path, exc)
            rows = file_batches(batch.flattened.path, kind, settings)
            more = _write_all(kind, rows, store=store, sink=sink, settings=settings, progress=progress)
            read, added = read + more[0], added + more[1]
            continue
        sink.add(batch.bad, kind.name)
        read += batch.read
        if progress and batch.read:
            progress(batch.read)
    return read, added
