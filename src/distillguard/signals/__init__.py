"""Per-exchange enrichers: Arrow record batch in, the same batch plus columns out.

An enricher is one file in this package defining a subclass of ``Enricher``;
the registry finds it by importing the package's modules, so adding a signal
is adding a file. Enrichers are pure and stateless, so the same code runs over
DuckDB batches locally and inside Spark's ``mapInArrow``.

>>> import pyarrow as pa, datetime as dt
>>> batch = pa.RecordBatch.from_pylist([{"exchange_id": "e", "account_id": "a",
...     "timestamp": dt.datetime(2026, 2, 1, 13, tzinfo=dt.UTC), "prompt_text": "Add 2 and 3",
...     "system_text": None}])
>>> out = enrich(batch)
>>> out.column("hour_of_day")[0].as_py(), out.column("prompt_chars")[0].as_py()
(13, 11)
"""

from __future__ import annotations

import sys
from functools import cache

import pyarrow as pa

from distillguard._registry import discover
from distillguard.signals.base import Enricher

__all__ = ["INPUT_COLUMNS", "Enricher", "enrich", "registered_enrichers"]

INPUT_COLUMNS = [
    "exchange_id", "account_id", "timestamp", "model", "client_ip", "n_user_turns", "n_tools",
    "n_choices", "max_tokens", "temperature", "input_tokens", "output_tokens", "n_images", "prompt_text",
    "system_text", "request_format",
]
"""Exchange columns the enrich stage reads (text columns are dropped after)."""


@cache
def registered_enrichers() -> tuple[Enricher, ...]:
    """One instance of every ``Enricher`` subclass defined in this package."""
    return tuple(cls() for cls in discover(sys.modules[__name__], Enricher))  # type: ignore[type-abstract]


def enrich(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Apply every registered enricher to ``batch``."""
    for enricher in registered_enrichers():
        batch = enricher.enrich(batch)
    return batch
