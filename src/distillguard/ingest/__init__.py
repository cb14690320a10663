"""Ingest a traffic directory into the store: stream, validate, quarantine, dedupe.

Memory stays bounded whatever the file size: rows are validated one at a time,
written to a staging table in batches, and merged into ``exchanges`` by
``exchange_id`` in DuckDB (which spills to disk), so re-ingesting the same data
adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest.normalize import RowProblem
from distillguard.ingest.parse import parse_files
from distillguard.ingest.rows import account_row, event_row
from distillguard.ingest.sources import Bad, find_files, iter_records
from distillguard.schema import ACCOUNTS, EVENTS, QUARANTINE
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
    """Append each parsed batch's new exchange ids; return (rows read, rows added).

    Each batch is deduplicated on its own (first occurrence wins) and against
    the table, so rows are written once; an interrupted run leaves whole
    batches, and running it again adds only what is missing.
    """
    read = added = 0
    for parsed in parse_files(files, settings):
        for bad in parsed.bad:
            quarantine.add(bad, "exchanges")
        if parsed.table is None:
            continue
        before = store.count("exchanges")
        with store.transaction(), store.registered(parsed.table) as view:
            store.con.execute(
                f"""INSERT INTO exchanges
                    SELECT * FROM {view} b
                    WHERE NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.exchange_id = b.exchange_id)
                    QUALIFY row_number() OVER (PARTITION BY exchange_id ORDER BY source_file, source_line) = 1"""
            )
        read += parsed.table.num_rows
        added += store.count("exchanges") - before
        if progress:
            progress(parsed.table.num_rows)
    return read, added


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
