"""Per-exchange enrichers: Arrow record batch in, the same batch plus columns out.

An enricher is one file in this package defining a subclass of ``Enricher``
(or, from another package, an entry point in ``distillguard.signals``); the
registry finds it, so adding a signal is adding a file. Each declares the
columns it adds and their types, and the ``signals`` table is built from them
(``signals_schema``). Enrichers are pure and stateless, so the same code runs
over DuckDB batches locally and inside Spark's ``mapInArrow``.

>>> import pyarrow as pa, datetime as dt
>>> batch = pa.RecordBatch.from_pylist([{"exchange_id": "e", "account_id": "a",
...     "timestamp": dt.datetime(2026, 2, 1, 13, tzinfo=dt.UTC), "prompt_text": "Add 2 and 3",
...     "system_text": None}])
>>> out = enrich(batch)
>>> out.column("hour_of_day")[0].as_py(), out.column("prompt_chars")[0].as_py()
(13, 11)
>>> signals_schema().names[:5]
['exchange_id', 'account_id', 'timestamp', 't_s', 'hour_of_day']
"""

from __future__ import annotations

import sys
from functools import cache

import pyarrow as pa

from distillguard._registry import SIGNALS_GROUP, discover
from distillguard.errors import SchemaError
from distillguard.signals.base import Enricher

__all__ = ["CARRIED", "INPUT_COLUMNS", "Enricher", "enrich", "registered_enrichers", "signals_schema"]

INPUT_COLUMNS = [
    "exchange_id", "account_id", "timestamp", "model", "client_ip", "n_user_turns", "n_tools",
    "n_choices", "max_tokens", "temperature", "input_tokens", "output_tokens", "n_images", "prompt_text",
    "system_text", "request_format",
]
"""Exchange columns the enrich stage reads (text columns are dropped after)."""

CARRIED = pa.schema(
    [
        pa.field("exchange_id", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        ("model", pa.string()),
        ("client_ip", pa.string()),
        ("n_user_turns", pa.int32()),
        ("n_tools", pa.int32()),
        ("n_choices", pa.int32()),
        ("max_tokens", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("temperature", pa.float64()),
    ]
)
"""Exchange columns the signals table keeps for later stages, typed as in ``schema.EXCHANGES``."""


@cache
def registered_enrichers() -> tuple[Enricher, ...]:
    """One instance of every ``Enricher`` defined in this package or installed as a plugin, by name."""
    return tuple(cls() for cls in discover(sys.modules[__name__], Enricher, SIGNALS_GROUP))  # type: ignore[type-abstract]


def enrich(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Apply every registered enricher to ``batch``; a column one adds without declaring it is a ``SchemaError``."""
    for enricher in registered_enrichers():
        before = set(batch.schema.names)
        batch = enricher.enrich(batch)
        undeclared = [c for c in batch.schema.names if c not in before and c not in enricher.columns]
        if undeclared:
            raise SchemaError(f"enricher {enricher.name!r} adds {undeclared} without declaring them in its columns")
    return batch


def signals_schema() -> pa.Schema:
    """The ``signals`` table: ``CARRIED`` plus every enricher's columns, each enricher's after its ``after``."""
    return _layout(registered_enrichers())


@cache
def _layout(enrichers: tuple[Enricher, ...]) -> pa.Schema:
    """Place each enricher's columns after its anchor column (anchors may be other enrichers' columns);
    enrichers without one go last, in registry order."""
    fields = list(CARRIED)
    follows: dict[str, str] = {}  # anchor → the last column placed after it, so ties keep registry order
    pending = [e for e in enrichers if e.after is not None]
    while pending:
        names = [f.name for f in fields]
        ready = [e for e in pending if e.after in names]
        if not ready:
            raise SchemaError("no signals column " + ", ".join(f"{e.after!r} (after of enricher {e.name!r})"
                                                              for e in pending))
        for enricher in ready:
            anchor = str(enricher.after)
            at = [f.name for f in fields].index(follows.get(anchor, anchor)) + 1
            fields[at:at] = _fields(enricher, fields)
            follows[anchor] = fields[at + len(enricher.columns) - 1].name
        pending = [e for e in pending if e not in ready]
    for enricher in enrichers:
        if enricher.after is None:
            fields += _fields(enricher, fields)
    return pa.schema(fields)


def _fields(enricher: Enricher, placed: list[pa.Field]) -> list[pa.Field]:
    taken = {f.name for f in placed} & set(enricher.columns)
    if taken:
        raise SchemaError(f"enricher {enricher.name!r} declares column(s) {sorted(taken)} that the signals "
                          "table already has")
    return [pa.field(name, type_) for name, type_ in enricher.columns.items()]
