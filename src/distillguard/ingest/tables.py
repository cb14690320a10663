"""The three tables a traffic directory fills, as data: how a record becomes a row, which row wins.

Every stage of the reader takes a ``TableKind`` instead of branching on the
table's name: ``row`` is the validate/normalize step (``RowProblem`` says why a
record is unusable), ``key`` and ``first_wins`` tell the store stage how a
batch meets the rows already stored, and ``flatten`` is the fast columnar
decoder for Parquet files of the usual layout (exchanges only).

>>> [(k.name, k.first_wins) for k in TABLES]
[('exchanges', True), ('accounts', False), ('events', False)]
>>> EXCHANGE_TABLE.row(Record("f.jsonl", 3, {"account_id": "a", "timestamp": "2026-02-01T12:00:00Z",
...     "exchange_id": "e", "request": {"prompt": "hi"}}, None))["source_line"]
3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from distillguard.ingest.columnar import Flatten, flatten_sql
from distillguard.ingest.rows import account_row, event_row, exchange_row
from distillguard.ingest.sources import Record
from distillguard.schema import ACCOUNTS, EVENTS, EXCHANGES

__all__ = ["ACCOUNT_TABLE", "EVENT_TABLE", "EXCHANGE_TABLE", "TABLES", "TableKind"]


@dataclass(frozen=True)
class TableKind:
    """One table of a traffic directory: its files' stem, store table and quarantine ``kind`` are ``name``."""

    name: str
    schema: pa.Schema
    row: Callable[[Record], dict[str, Any]]
    """Validate and flatten one record into a row of ``schema``; raises ``RowProblem``."""
    key: tuple[str, ...]
    first_wins: bool
    """True: a stored row is never replaced and, within a batch, the first by file and line wins
    (re-ingest adds nothing). False: a later row replaces an earlier one (a later line corrects
    it); such a table is small and read as one batch, so the last row over all its files wins."""
    flatten: Callable[[pa.Schema], Flatten | None] | None = None
    """The columnar decoder's SQL for a Parquet file of this table, when its layout allows."""


def _exchange(record: Record) -> dict[str, Any]:
    row = exchange_row(record.value, record.raw, record.notes)
    row["source_file"], row["source_line"] = record.file, record.line
    return row


def _account(record: Record) -> dict[str, Any]:
    return account_row(record.value)


def _event(record: Record) -> dict[str, Any]:
    return event_row(record.value)


EXCHANGE_TABLE = TableKind("exchanges", EXCHANGES, _exchange, ("exchange_id",), first_wins=True, flatten=flatten_sql)
ACCOUNT_TABLE = TableKind("accounts", ACCOUNTS, _account, ("account_id",), first_wins=False)
EVENT_TABLE = TableKind("events", EVENTS, _event, ("timestamp", "type", "model"), first_wins=False)
TABLES = (EXCHANGE_TABLE, ACCOUNT_TABLE, EVENT_TABLE)
"""In the order they are read; exchanges are required, the others optional."""
