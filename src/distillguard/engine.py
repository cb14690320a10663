"""Compute engines for the relational stages: the same Ibis expression on DuckDB or Spark.

A stage is a function from Ibis tables to an Ibis table; an ``Engine`` gives it
its input tables and executes its result to Arrow. DuckDB reads the store in
place; Spark (local mode or a cluster) reads the store's tables as Parquet.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from distillguard.errors import EngineError
from distillguard.store import Store

log = logging.getLogger(__name__)
ENGINES = ("duckdb", "spark")


class Engine(ABC):
    """Runs Ibis expressions over the store's tables."""

    name: str

    @abstractmethod
    def table(self, name: str) -> ir.Table:
        """The store table ``name`` as an Ibis table on this engine."""

    def execute(self, expr: ir.Table) -> pa.Table:
        try:
            return expr.to_pyarrow()
        except Exception as exc:  # translate engine errors at the boundary
            raise EngineError(f"{self.name} failed to run a stage: {exc}") from exc

    def close(self) -> None:  # noqa: B027 (optional hook; most engines hold nothing)
        """Release resources (temporary files)."""


class DuckDBEngine(Engine):
    """Runs in the store's own DuckDB connection; nothing is copied."""

    name = "duckdb"

    def __init__(self, store: Store) -> None:
        self.con = ibis.duckdb.from_connection(store.con)

    def table(self, name: str) -> ir.Table:
        return self.con.table(name)


class SparkEngine(Engine):
    """Runs on PySpark; store tables travel as Parquet files."""

    name = "spark"

    def __init__(self, store: Store, session: Any | None = None) -> None:
        self.store = store
        self.session = session or spark_session()
        self.con = ibis.pyspark.connect(self.session)
        self._tmp = tempfile.TemporaryDirectory(prefix="distillguard-spark-")

    def table(self, name: str) -> ir.Table:
        path = Path(self._tmp.name) / f"{name}.parquet"
        if not path.exists():
            self.store.con.execute(f"COPY {name} TO '{path}' (FORMAT parquet)")
        return self.con.read_parquet(str(path), table_name=name)

    def enrich_to_arrow(self) -> pa.Table:
        """Run ``signals.enrich`` over the store's exchanges on Spark (``mapInArrow``)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        from distillguard.schema import SIGNALS
        from distillguard.signals import INPUT_COLUMNS

        src = Path(self._tmp.name) / "enrich-input.parquet"
        dst = Path(self._tmp.name) / "enrich-output"
        cols = ", ".join(INPUT_COLUMNS)
        self.store.con.execute(f"COPY (SELECT {cols} FROM exchanges) TO '{src}' (FORMAT parquet)")
        try:
            frame = self.session.read.parquet(str(src))
            frame.mapInArrow(_enrich_partition, from_arrow_schema(SIGNALS)).write.mode("overwrite").parquet(str(dst))
        except Exception as exc:  # Spark raises many types; translate at the boundary
            raise EngineError(f"spark failed to enrich exchanges: {exc}") from exc
        return self.store.con.execute(f"SELECT * FROM read_parquet('{dst}/*.parquet')").to_arrow_table()

    def close(self) -> None:
        self._tmp.cleanup()


def _enrich_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Spark worker side of ``enrich_to_arrow`` (module level, so it pickles)."""
    from distillguard.schema import SIGNALS
    from distillguard.signals import enrich

    for batch in batches:
        yield enrich(batch).select(SIGNALS.names)


def spark_session(master: str = "local[2]") -> Any:
    """A Spark session set up for distillguard (UTC, small shuffles, no UI)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "the spark engine needs PySpark: pip install 'distillguard[spark]'"
        ) from exc
    # Local workers must run this interpreter (where distillguard is installed), not the first python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = (
            SparkSession.builder.master(master)
            .appName("distillguard")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        return session
    except Exception as exc:
        raise EngineError(f"cannot start Spark ({master}): {exc}") from exc


def make_engine(name: str, store: Store) -> Engine:
    """The engine called ``name`` (one of ``ENGINES``) over ``store``."""
    if name == "duckdb":
        return DuckDBEngine(store)
    if name == "spark":
        return SparkEngine(store)
    raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
