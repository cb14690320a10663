"""The store: tables exist, writes are atomic, bad names and shapes are clear errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.errors import SchemaError, StoreError
from distillguard.schema import TABLES, empty
from distillguard.store import Store


def test_every_schema_table_exists(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        for name in TABLES:
            assert store.count(name) == 0
            got, want = store.read(name).schema, empty(name).schema
            assert [(f.name, f.type) for f in got] == [(f.name, f.type) for f in want]


def test_interrupted_stage_leaves_previous_rows(tmp_path: Path) -> None:
    row = {"file": "f", "line": 1, "reason": "r", "kind": "exchanges", "excerpt": ""}
    with Store.open(tmp_path / "s.duckdb") as store:
        store.append("quarantine", pa.Table.from_pylist([row], schema=TABLES["quarantine"]))
        with pytest.raises(KeyboardInterrupt), store.transaction():
            store.con.execute("DELETE FROM quarantine")
            raise KeyboardInterrupt
        assert store.count("quarantine") == 1


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        with pytest.raises(SchemaError, match="unknown table"):
            store.count("nope")
        with pytest.raises(SchemaError, match="lacks column"):
            store.append("quarantine", pa.table({"file": ["f"]}))
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "missing.duckdb", read_only=True)


def test_a_signals_column_the_table_lacks_is_refused_not_dropped(tmp_path: Path) -> None:
    """Exchange text the enrich stage read may go; a column an enricher made without declaring it may not."""
    row = {name: None for name in TABLES["signals"].names} | {"exchange_id": "e", "account_id": "a",
                                                              "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    with Store.open(tmp_path / "s.duckdb") as store:
        store.append("signals", pa.Table.from_pylist([row | {"prompt_text": "kept out"}]))
        assert store.count("signals") == 1
        with pytest.raises(SchemaError, match=r"no column\(s\) \['novelty'\]: declare them"):
            store.append("signals", pa.Table.from_pylist([row | {"novelty": 0.5}]))


def test_feature_rounding_makes_float_aggregates_reproducible() -> None:
    import pyarrow as pa

    from distillguard.pipeline import rounded

    t = pa.table({"x": [0.1 + 0.2, None], "bits": pa.array([[1 / 3, 0.5], None], pa.list_(pa.float64())),
                  "id": ["a", "b"]})
    out = rounded(t)
    assert out.schema == t.schema
    assert out.to_pylist() == [{"x": 0.3, "bits": [0.333333333, 0.5], "id": "a"},
                               {"x": None, "bits": None, "id": "b"}]
    assert rounded(t.slice(1)).to_pylist() == [{"x": None, "bits": None, "id": "b"}]


def test_a_store_from_an_earlier_release_gains_new_columns_and_appends_by_name(tmp_path: Path) -> None:
    from distillguard.schema import SIGNALS

    path = tmp_path / "old.duckdb"
    with Store.open(path) as store:  # as a release before template_tail wrote it
        store.con.execute("ALTER TABLE signals DROP COLUMN template_tail")
    with Store.open(path) as store:
        assert store.con.execute("SELECT column_name FROM (DESCRIBE signals)").fetchall()[-1] == ("template_tail",)
        row = {k: None for k in SIGNALS.names} | {
            "exchange_id": "x1", "account_id": "a1", "timestamp": dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
            "template_head": "head", "template_tail": "tail", "capability": "coding"}
        store.append("signals", pa.Table.from_pylist([row], schema=SIGNALS))
        got = store.read("signals").to_pylist()[0]
        assert (got["template_head"], got["template_tail"], got["capability"]) == ("head", "tail", "coding")
