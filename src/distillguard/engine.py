"""Compute engines for the relational stages: the same Ibis expression on DuckDB or Spark.

A stage is a function from Ibis tables to an Ibis table; an ``Engine`` gives it
its input tables and executes its result to Arrow. DuckDB reads the store in
place; Spark (local mode or a cluster) reads the per-exchange tables as Parquet
from its warehouse and returns only per-account results (``docs/scale.md``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from distillguard.errors import EngineError
from distillguard.store import Store

log = logging.getLogger(__name__)
ENGINES = ("duckdb", "spark")
PER_EXCHANGE = ("exchanges", "signals")
"""Tables Spark reads from its warehouse (Parquet), never through the driver."""
DAY = "day"
"""The partition column of the warehouse's exchanges (a UTC date), not a column of the table."""
_MASTER = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|spark://[\w.-]+:\d+(,[\w.-]+:\d+)*|yarn|k8s://\S+")


@dataclass(frozen=True)
class SparkOptions:
    """Where the Spark engine runs: ``master`` (``spark_session``; None: spark-submit's, else local[2])
    and ``warehouse``, the path of its Parquet tables (default: ``<store>.spark`` beside the store file)."""

    master: str | None = None
    warehouse: str | None = None

    def nested(self, name: str) -> SparkOptions:
        """The options for a second store (a scan's reference): its own folder in the same warehouse."""
        return replace(self, warehouse=f"{self.warehouse.rstrip('/')}/{name}" if self.warehouse else None)


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
    """Runs on PySpark (local mode or a cluster); the per-exchange tables live as Parquet in ``warehouse``.

    ``exchanges`` is written there once, partitioned by day, from the store the driver ingested into;
    ``enrich`` writes ``signals`` there from the executors (``mapInArrow``). Stages read both from
    the warehouse and only their per-account results come back to the driver; the small per-account
    tables (accounts, events, reference values) go the other way, from the store.
    """

    name = "spark"
    _count = 0

    def __init__(self, store: Store, session: Any | None = None, *, options: SparkOptions | None = None) -> None:
        self.store = store
        self.options = options or SparkOptions()
        self.warehouse = self.options.warehouse or str(store.path.with_suffix(".spark"))
        self._local(self.warehouse)  # refused before Spark starts
        self.session = session or spark_session(self.options.master)
        self.con = ibis.pyspark.connect(self.session)
        self._exchanges_written = False
        SparkEngine._count += 1
        self._prefix = f"dg{SparkEngine._count}_"  # the views of two engines on one session stay apart

    def table(self, name: str) -> ir.Table:
        # Per account or smaller: sent from the store, fresh each time (stages replace them).
        frame = self._per_exchange(name) if name in PER_EXCHANGE else _frame(self.session, self.store.read(name))
        view = f"{self._prefix}{name}"
        frame.createOrReplaceTempView(view)
        return self.con.table(view)

    def _per_exchange(self, name: str) -> Any:
        if name == "exchanges":
            self._write_exchanges()
        elif not self._local(self._path(name)).exists() and self.store.count(name):
            # A store enriched by DuckDB before (a reference prepared in an earlier scan): its signals, once.
            self.store.con.execute(f"COPY {name} TO '{self._local(self._path(name))}' (FORMAT parquet, "
                                   "PER_THREAD_OUTPUT true)")
        try:
            frame = self.session.read.parquet(self._path(name))
        except Exception as exc:  # Spark raises many types; translate at the boundary
            raise EngineError(f"spark cannot read {self._path(name)}: {exc}") from exc
        return frame.drop(DAY) if DAY in frame.columns else frame

    def _path(self, name: str) -> str:
        return f"{self.warehouse.rstrip('/')}/{name}"

    @property
    def signals_path(self) -> str:
        """Where ``enrich`` writes the signals (Parquet, one folder)."""
        return self._path("signals")

    def _local(self, path: str) -> Path:
        """``path`` as the driver's DuckDB writes it: the warehouse must be a path every node mounts."""
        if "://" in path and not path.startswith("file://"):
            raise EngineError(f"the warehouse {self.warehouse} is not a local path: the exchanges the driver "
                              "ingested are written there by DuckDB; use a path every node mounts (docs/scale.md)")
        return Path(path.removeprefix("file://"))

    def _write_exchanges(self) -> None:
        """The store's exchanges to the warehouse as Parquet partitioned by UTC day (once per engine)."""
        if self._exchanges_written:
            return
        local = self._local(self._path("exchanges"))
        shutil.rmtree(local, ignore_errors=True)
        local.parent.mkdir(parents=True, exist_ok=True)
        rows = f"SELECT *, CAST(timestamp AS DATE) AS {DAY} FROM exchanges"
        if self.store.count("exchanges"):
            self.store.con.execute(f"COPY ({rows}) TO '{local}' (FORMAT parquet, PARTITION_BY ({DAY}))")
        else:  # no partition to write: one empty file keeps the columns
            local.mkdir()
            self.store.con.execute(f"COPY ({rows}) TO '{local / 'empty.parquet'}' (FORMAT parquet)")
        self._exchanges_written = True

    def enrich(self) -> None:
        """Run ``signals.enrich`` over the exchanges on the executors (``mapInArrow``) into the warehouse's
        ``signals`` (one row per exchange; the signals stay in the warehouse)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        from distillguard.schema import SIGNALS
        from distillguard.signals import INPUT_COLUMNS

        try:
            frame = self._per_exchange("exchanges").select(*INPUT_COLUMNS)
            out = frame.mapInArrow(_enrich_partition, from_arrow_schema(SIGNALS))
            out.write.mode("overwrite").parquet(self._path("signals"))
        except EngineError:
            raise
        except Exception as exc:  # Spark raises many types; translate at the boundary
            raise EngineError(f"spark failed to enrich exchanges: {exc}") from exc

    def close(self) -> None:
        from distillguard.schema import tables

        for name in tables():
            self.session.catalog.dropTempView(f"{self._prefix}{name}")


def _frame(session: Any, table: pa.Table) -> Any:
    """A small Arrow table as a Spark DataFrame (Spark 4 takes Arrow as it is, types and all)."""
    return session.createDataFrame(table)


def _enrich_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Spark worker side of ``SparkEngine.enrich`` (module level, so it pickles)."""
    from distillguard.schema import SIGNALS
    from distillguard.signals import enrich

    for batch in batches:
        yield enrich(batch).select(SIGNALS.names)


def spark_session(master: str | None = "local[2]") -> Any:
    """A Spark session set up for distillguard (UTC, no UI) on ``master``.

    ``master``: ``local[N]`` (this process) or a cluster's URL (``spark://host:7077``, ``yarn``,
    ``k8s://...``); ``check_master`` refuses a malformed or unreachable one before Java starts.
    None: the master ``spark-submit`` (or a Databricks job) set, else ``local[2]``.
    """
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        master = "local[2]"
    if master is not None:
        check_master(master)
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError(
            "the spark engine needs PySpark: pip install 'distillguard[spark]'"
        ) from exc
    # Workers must run this interpreter (where distillguard is installed), not the first python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName("distillguard")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master is not None:
        builder = builder.master(master)
    if master and master.startswith("local"):  # small shuffles and no UI in one process; a cluster keeps its own
        builder = builder.config("spark.sql.shuffle.partitions", "4").config("spark.ui.enabled", "false")
    if master and master.startswith(("spark://127.0.0.1", "spark://localhost")):
        # A cluster on loopback (tests, benchmarks): executors must reach the driver there too.
        builder = (builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.ui.enabled", "false"))
    try:
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        return session
    except Exception as exc:
        raise EngineError(f"cannot start Spark ({master or 'spark-submit'}): {_first_line(exc)}") from exc


def check_master(master: str) -> None:
    """Refuse a malformed master URL, and a standalone master (``spark://``) that does not answer.

    >>> check_master("local[2]")
    >>> check_master("spark:/host")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    distillguard.errors.EngineError: bad Spark master 'spark:/host': expected local, local[N], local[*], ...
    """
    if not _MASTER.fullmatch(master):
        raise EngineError(f"bad Spark master {master!r}: expected local, local[N], local[*], "
                          "spark://HOST:PORT[,HOST:PORT], yarn or k8s://URL")
    if not master.startswith("spark://"):
        return
    errors = []
    for hostport in master.removeprefix("spark://").split(","):
        host, port = hostport.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=3):
                return
        except OSError as exc:
            errors.append(f"{hostport}: {exc.strerror or exc}")
    raise EngineError(f"cannot reach the Spark master {master} ({'; '.join(errors)})")


def _first_line(exc: BaseException) -> str:
    """A Java exception's first line, not its stack trace."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def make_engine(name: str, store: Store, *, spark: SparkOptions | None = None) -> Engine:
    """The engine called ``name`` (one of ``ENGINES``) over ``store``; ``spark``: where Spark runs."""
    if name == "duckdb":
        return DuckDBEngine(store)
    if name == "spark":
        return SparkEngine(store, options=spark)
    raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
