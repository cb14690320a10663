"""The signals table is built from what the enrichers declare, in the layout stores already have."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

import pyarrow as pa
import pytest

from distillguard.errors import SchemaError
from distillguard.schema import EXCHANGES, SIGNALS, TABLES
from distillguard.signals import CARRIED, enrich, registered_enrichers, signals_schema
from distillguard.signals.base import Enricher, with_columns

TS = pa.timestamp("us", tz="UTC")

# The layout of the signals table before enrichers declared their columns, plus ``template_tail`` (stores
# written before it gain it as their last column: ``Store.add_missing_columns``; rows are appended by name).
LAYOUT = pa.schema([
    pa.field("exchange_id", pa.string(), nullable=False), pa.field("account_id", pa.string(), nullable=False),
    pa.field("timestamp", TS, nullable=False), ("t_s", pa.float64()), ("hour_of_day", pa.int32()),
    ("day_of_week", pa.int32()), ("day_index", pa.int64()), ("model", pa.string()), ("client_ip", pa.string()),
    ("n_user_turns", pa.int32()), ("n_tools", pa.int32()), ("n_choices", pa.int32()), ("max_tokens", pa.int64()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("prompt_chars", pa.int64()),
    ("template_sig", pa.string()), ("template_simhash", pa.int64()), ("template_head", pa.string()),
    ("template_tail", pa.string()),
    ("topic_simhash", pa.int64()), ("capability", pa.string()), ("elicitation", pa.float64()),
    ("temperature", pa.float64()), ("harvest_format", pa.float64()), ("safeguard_stripping", pa.float64()),
])


def test_signals_table_keeps_its_layout() -> None:
    assert signals_schema().equals(LAYOUT)
    assert SIGNALS.equals(LAYOUT) and TABLES["signals"].equals(LAYOUT)


def test_carried_columns_are_typed_as_in_exchanges() -> None:
    assert all(EXCHANGES.field(f.name).equals(f) for f in CARRIED)


def test_every_enricher_column_is_in_the_table() -> None:
    for enricher in registered_enrichers():
        assert all(SIGNALS.field(c).type == t for c, t in enricher.columns.items())


def test_an_undeclared_column_is_an_error_naming_the_enricher(monkeypatch: pytest.MonkeyPatch) -> None:
    class Sloppy(Enricher):
        name = "sloppy"
        columns = MappingProxyType({"declared": pa.int64()})

        def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
            ones = pa.array([1] * batch.num_rows, pa.int64())
            return with_columns(batch, {"declared": ones, "undeclared": ones})

    monkeypatch.setattr("distillguard.signals.registered_enrichers", lambda: (Sloppy(),))
    batch = pa.RecordBatch.from_pylist([{"exchange_id": "e", "account_id": "a",
                                         "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}])
    with pytest.raises(SchemaError, match=r"'sloppy' adds \['undeclared'\]"):
        enrich(batch)


def test_an_enricher_must_declare_its_columns() -> None:
    with pytest.raises(TypeError, match="declares no columns"):
        class Silent(Enricher):
            name = "silent"

            def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
                return batch
