"""``scan --engine spark --master spark://...`` on a real standalone cluster (a master and two workers
on loopback, ``bench.spark_cluster``) gives the DuckDB scan's outputs, and no signal comes back to
the driver's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.bench.spark_cluster import java_missing, standalone_cluster
from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``spark://127.0.0.1:PORT``: two workers of one core each, stopped at the end of the run."""
    why = java_missing()
    if why:
        pytest.skip(why)
    with standalone_cluster(2, work_dir=tmp_path_factory.mktemp("spark-cluster")) as master:
        yield master


@pytest.fixture(scope="session")
def sharded_traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few thousand exchanges as Parquet shards (``exchanges/``)."""
    out = tmp_path_factory.mktemp("traffic") / "sharded"
    generate(load_scenario("demo").scaled(0.1), out, seed=5, fmt="parquet", rows_per_shard=1000)
    return out


def test_a_cluster_scan_equals_the_duckdb_scan(spark_master: str, sharded_traffic: Path, tmp_path: Path) -> None:
    assert len(list((sharded_traffic / "exchanges").glob("*.parquet"))) > 1
    with Store.open(tmp_path / "duck.duckdb") as store:
        scan(sharded_traffic, tmp_path / "duck", store=store)
    cmd = [sys.executable, "-m", "distillguard", "scan", str(sharded_traffic), "--out", str(tmp_path / "spark"),
           "--db", str(tmp_path / "spark.duckdb"), "--engine", "spark", "--master", spark_master]
    # Two shuffle partitions per core, as a cluster would be set up (the default 200 suits hundreds of cores).
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": "--conf spark.sql.shuffle.partitions=4 pyspark-shell"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    duck, spark = (pq.read_table(tmp_path / d / "accounts.parquet").sort_by("account_id") for d in ("duck", "spark"))
    _assert_same(duck, spark)
    assert json.loads((tmp_path / "duck" / "campaigns.json").read_text()) == json.loads(
        (tmp_path / "spark" / "campaigns.json").read_text())
    with Store.open(tmp_path / "spark.duckdb", read_only=True) as store:
        assert store.count("signals") == 0 and store.count("account_features") > 0
    assert list((tmp_path / "spark.spark" / "signals").glob("*.parquet"))  # the signals stayed in the warehouse
    assert len(list((tmp_path / "spark.spark" / "exchanges").glob("day=*"))) > 1  # partitioned by day


def _assert_same(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names and a.num_rows == b.num_rows > 0
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if pa.types.is_floating(a.schema.field(name).type):
            np.testing.assert_allclose(np.array(x, float), np.array(y, float), rtol=1e-9, err_msg=name)
        else:
            assert x == y, name
