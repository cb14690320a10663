"""The relational stages give identical results on DuckDB and PySpark (local mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distillguard.config import LinkSettings
from distillguard.engine import DuckDBEngine, SparkEngine
from distillguard.features import account_features
from distillguard.ingest import ingest_traffic_dir
from distillguard.link import LinkInputs, link_edges
from distillguard.pipeline import run_enrich
from distillguard.store import Store

pytest.importorskip("pyspark")
pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def store(small_traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = Store.open(tmp_path_factory.mktemp("engines") / "s.duckdb")
    ingest_traffic_dir(small_traffic, s)
    run_enrich(s)
    return s


@pytest.fixture(scope="module")
def spark(store: Store) -> Iterator[SparkEngine]:
    """The store's exchanges enriched on Spark: its signals live in the warehouse (Parquet) only."""
    engine = SparkEngine(store)
    engine.enrich()
    yield engine
    engine.close()


def _assert_same(a: pa.Table, b: pa.Table, keys: list[str]) -> None:
    a, b = a.sort_by([(k, "ascending") for k in keys]), b.sort_by([(k, "ascending") for k in keys])
    assert a.column_names == b.column_names and a.num_rows == b.num_rows > 0
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if pa.types.is_floating(a.schema.field(name).type):
            xs = np.array([np.nan if v is None else v for v in x], float)
            ys = np.array([np.nan if v is None else v for v in y], float)
            # Float sums are not associative; engines add in different orders.
            np.testing.assert_allclose(xs, ys, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
        else:
            assert x == y, name


def test_enrich_identical_locally_and_on_spark(store: Store, spark: SparkEngine) -> None:
    from distillguard.schema import SIGNALS

    local = store.read("signals")
    on_spark = spark.execute(spark.table("signals")).select(SIGNALS.names).cast(local.schema)
    _assert_same(local, on_spark, ["exchange_id"])


def test_features_identical_on_duckdb_and_spark(store: Store, spark: SparkEngine) -> None:
    duck = DuckDBEngine(store)
    on_duck = duck.execute(account_features(duck.table("signals"), duck.table("accounts"), duck.table("events")))
    on_spark = spark.execute(account_features(spark.table("signals"), spark.table("accounts"),
                                              spark.table("events")))
    _assert_same(on_duck, on_spark.cast(on_duck.schema), ["account_id"])


def test_link_edges_identical_on_duckdb_and_spark(store: Store, spark: SparkEngine) -> None:
    def edges(engine: DuckDBEngine | SparkEngine) -> pa.Table:
        inputs = LinkInputs(*(engine.table(n) for n in ("exchanges", "signals", "accounts", "events")))
        t = engine.execute(link_edges(inputs, LinkSettings(max_group_accounts=50)))
        return t.set_column(3, "kinds", pa.array([sorted(k) for k in t.column("kinds").to_pylist()]))

    duck = edges(DuckDBEngine(store))
    assert set(duck.column("kinds").to_pylist()[0]) <= {"ip", "payment", "template", "sync", "asn", "prefix",
                                                         "user_agent", "tls", "email_domain", "signup_burst",
                                                         "template_lsh", "release", "template_head", "template_tail",
                                                         "hosting_asn"}
    _assert_same(duck, edges(spark).cast(duck.schema), ["src", "dst"])


def test_whole_scan_identical_on_both_engines(small_traffic: Path, tmp_path: Path, spark: SparkEngine) -> None:
    import json

    import pyarrow.parquet as pq

    from distillguard.pipeline import scan

    outs = {}
    for name in ("duckdb", "spark"):
        with Store.open(tmp_path / f"{name}.duckdb") as s:
            scan(small_traffic, tmp_path / name, store=s, engine_name=name)
        outs[name] = pq.read_table(tmp_path / name / "accounts.parquet").sort_by("account_id")
    _assert_same(outs["duckdb"], outs["spark"], ["account_id"])
    assert json.loads((tmp_path / "duckdb" / "campaigns.json").read_text()) == json.loads(
        (tmp_path / "spark" / "campaigns.json").read_text())
    # The signals stay in Spark's warehouse; what reads them later (the console) finds them there.
    with Store.open(tmp_path / "spark.duckdb") as s:
        assert s.count("signals") == 0 and s.signals_sql() != "signals"
        assert s.con.execute(f"SELECT count(*) FROM {s.signals_sql()}").fetchone() == (s.count("exchanges"),)
