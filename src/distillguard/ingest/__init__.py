"""Ingest a traffic directory into the store: stream, validate, quarantine, dedupe.

Memory stays bounded whatever the file size: JSONL rows are validated in
Python batches (``parse``, ``rows``), Parquet files of the usual layout are
flattened by DuckDB from their typed columns (``columnar``; rows it cannot
flatten exactly take the Python path), and rows are merged into ``exchanges``
by ``exchange_id`` in DuckDB (which spills to disk), so re-ingesting the same
data adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest.columnar import Flatten, flatten_sql
from distillguard.ingest.normalize import RowProblem
from distillguard.ingest.parse import parse_files, validated
from distillguard.ingest.rows import account_row, event_row
from distillguard.ingest.sources import Bad, find_files, iter_records, parquet_record
from distillguard.schema import ACCOUNTS, EVENTS, EXCHANGES, QUARANTINE
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
    traffic_dir: Path, store: Store, settings: IngestSettings | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest every table of ``traffic_dir`` into ``store``; return counts."""
    settings = settings or IngestSettings()
    traffic_dir = Path(traffic_dir)
    if not traffic_dir.exists():
        raise InputError(f"traffic directory not found: {traffic_dir}")
    if not traffic_dir.is_dir():
        raise InputError(f"not a directory: {traffic_dir}")
    exchange_files = find_files(traffic_dir, "exchanges")
    if not exchange_files:
        raise InputError(
            f"no exchanges in {traffic_dir}: expected exchanges.jsonl[.gz|.zst], "
            "exchanges.parquet or a folder exchanges/ of such shards"
        )
    account_files, event_files = find_files(traffic_dir, "accounts"), find_files(traffic_dir, "events")
    files = exchange_files + account_files + event_files
    quarantine = _Quarantine(store, settings.excerpt_chars)
    quarantine.forget(files)
    read, added = _ingest_exchanges(exchange_files, store, settings, quarantine, progress)
    accounts = _ingest_small(account_files, "accounts", account_row, ACCOUNTS, store, settings, quarantine)
    events = _ingest_small(event_files, "events", event_row, EVENTS, store, settings, quarantine)
    quarantine.flush()
    report = IngestReport(len(files), read, added, read - added, quarantine.count, accounts, events)
    log.info("ingest %s: %s", traffic_dir, report)
    return report


def _ingest_exchanges(
    files: list[Path], store: Store, settings: IngestSettings, quarantine: _Quarantine,
    progress: Progress | None,
) -> tuple[int, int]:
    """Add each file's new exchange ids; return (rows read, rows added).

    Parquet files of a layout ``columnar`` flattens exactly go through DuckDB
    whole; the others are parsed in Python batches (in worker processes). Files
    are taken in order, so which duplicate wins does not depend on the path.
    """
    read = added = 0
    for flatten, group in _runs(files):
        if flatten is not None:
            counts = _ingest_columnar(group[0], flatten, store, quarantine)
            if counts is not None:
                read, added = read + counts[0], added + counts[1]
                if progress:
                    progress(counts[0])
                continue
        r, a = _ingest_rows(group, store, settings, quarantine, progress)
        read, added = read + r, added + a
    return read, added


def _runs(files: list[Path]) -> list[tuple[Flatten | None, list[Path]]]:
    """``files`` in order, as single columnar Parquet files and runs of files parsed row by row."""
    runs: list[tuple[Flatten | None, list[Path]]] = []
    for path in files:
        flatten = _flatten_for(path)
        if flatten is None and runs and runs[-1][0] is None:
            runs[-1][1].append(path)
        else:
            runs.append((flatten, [path]))
    return runs


def _flatten_for(path: Path) -> Flatten | None:
    if not path.name.endswith(".parquet"):
        return None
    try:
        return flatten_sql(pq.read_schema(path))
    except (pa.ArrowException, OSError):
        return None  # the row path reports the file as unreadable


def _ingest_rows(
    files: list[Path], store: Store, settings: IngestSettings, quarantine: _Quarantine,
    progress: Progress | None,
) -> tuple[int, int]:
    """Validate rows in Python batches (``parse_files``); each batch is inserted on its own."""
    read = added = 0
    for parsed in parse_files(files, settings):
        for bad in parsed.bad:
            quarantine.add(bad, "exchanges")
        if parsed.table is None:
            continue
        with store.transaction(), store.registered(parsed.table) as view:
            added += _insert_new(store, f"SELECT * FROM {view}")
        read += parsed.table.num_rows
        if progress:
            progress(parsed.table.num_rows)
    return read, added


def _ingest_columnar(path: Path, flatten: Flatten, store: Store, quarantine: _Quarantine) -> tuple[int, int] | None:
    """Flatten one Parquet file in DuckDB; rows it cannot flatten exactly go through ``exchange_row``.

    Returns (rows read, rows added), or None when DuckDB cannot read the file
    (nothing is written; the row path then quarantines what it cannot read).
    """
    name = str(path)
    source = "read_parquet(?, file_row_number = true) t"
    try:
        with store.transaction():
            slow = store.con.execute(
                f"SELECT file_row_number + 1 AS n, to_json(t) AS j FROM {source} WHERE NOT ({flatten.ok})", [name]
            ).to_arrow_table()
            rows, bad = _exchange_rows(name, slow)
            total = pq.ParquetFile(path).metadata.num_rows
            with store.registered(pa.Table.from_pylist(rows, schema=EXCHANGES)) as view:
                fast = (f"SELECT {flatten.columns}, ? AS source_file, file_row_number + 1 AS source_line "
                        f"FROM {source} WHERE {flatten.ok}")
                added = _insert_new(store, f"{fast} UNION ALL BY NAME SELECT * FROM {view}", [name, name])
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        log.info("%s: read row by row (%s)", path, exc)
        return None
    for item in bad:  # only now: when the file falls back to the row path, that path quarantines them
        quarantine.add(item, "exchanges")
    return total - slow.num_rows + len(rows), added


def _exchange_rows(name: str, slow: pa.Table) -> tuple[list[dict[str, Any]], list[Bad]]:
    """``validated`` over Parquet rows given as (row number, JSON text)."""
    rows: list[dict[str, Any]] = []
    bad: list[Bad] = []
    for n, text in zip(slow.column("n").to_pylist(), slow.column("j").to_pylist(), strict=True):
        row = validated(parquet_record(name, n, text))
        if isinstance(row, Bad):
            bad.append(row)
        else:
            rows.append(row)
    return rows, bad


def _insert_new(store: Store, source: str, params: list[Any] | None = None) -> int:
    """Insert the rows of ``source`` whose exchange id is new; the first by file and line wins.

    Duplicates are found on (id, line) pairs only, so no wide row is held for it.
    """
    before = store.count("exchanges")
    store.con.execute(
        f"""INSERT INTO exchanges
            WITH b AS ({source}),
            firsts AS (SELECT exchange_id, arg_min(source_line, (source_file, source_line)) AS line,
                              min(source_file) AS file
                       FROM b GROUP BY exchange_id)
            SELECT b.* FROM b JOIN firsts f
              ON b.exchange_id = f.exchange_id AND b.source_line = f.line AND b.source_file = f.file
            WHERE NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.exchange_id = b.exchange_id)""",
        params or [],
    )
    return store.count("exchanges") - before


def _ingest_small(
    files: list[Path], kind: str, parse: Callable[[Any], dict[str, Any]], schema: pa.Schema,
    store: Store, settings: IngestSettings, quarantine: _Quarantine,
) -> int:
    """Accounts and events are small: validate, keep the last row per key, upsert."""
    rows = []
    for path in files:
        for item in iter_records(path, settings.max_line_bytes):
            if isinstance(item, Bad):
                quarantine.add(item, kind)
                continue
            try:
                rows.append(parse(item.value))
            except RowProblem as exc:
                quarantine.add(item.bad(str(exc)), kind)
    if not rows:
        return 0
    key = "account_id" if kind == "accounts" else "timestamp, type, model"
    with store.transaction(), store.registered(pa.Table.from_pylist(rows, schema=schema)) as view:
        # Last row per key wins (a later line corrects an earlier one).
        store.con.execute(
            f"""CREATE TEMP TABLE _new AS SELECT * EXCLUDE (_i) FROM (
                  SELECT *, row_number() OVER () AS _i FROM {view})
                QUALIFY _i = max(_i) OVER (PARTITION BY {key})"""
        )
        cond = " AND ".join(f"t.{k.strip()} IS NOT DISTINCT FROM n.{k.strip()}" for k in key.split(","))
        store.con.execute(f"DELETE FROM {kind} t WHERE EXISTS (SELECT 1 FROM _new n WHERE {cond})")
        store.con.execute(f"INSERT INTO {kind} SELECT * FROM _new")
        store.con.execute("DROP TABLE _new")
    return len(rows)


class _Quarantine:
    """Buffers bad rows and writes them to the ``quarantine`` table."""

    def __init__(self, store: Store, excerpt_chars: int) -> None:
        self.store, self.excerpt_chars = store, excerpt_chars
        self.rows: list[dict[str, Any]] = []
        self.count = 0

    def forget(self, files: Iterable[Path]) -> None:
        """Drop earlier quarantine rows of files about to be re-read."""
        names = [str(p) for p in files]
        self.store.con.execute("DELETE FROM quarantine WHERE list_contains(?, file)", [names])

    def add(self, bad: Bad, kind: str) -> None:
        self.count += 1
        log.debug("quarantined %s:%d: %s", bad.file, bad.line, bad.reason)
        self.rows.append({"file": bad.file, "line": bad.line, "reason": bad.reason, "kind": kind,
                          "excerpt": bad.excerpt[: self.excerpt_chars]})
        if len(self.rows) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.store.append("quarantine", pa.Table.from_pylist(self.rows, schema=QUARANTINE))
            self.rows.clear()
