"""The embedded store: one DuckDB database file holding every table of ``schema``.

Writes of one stage happen in one transaction, so an interrupted run leaves the
previous stage's tables intact and never half-written.

>>> import tempfile, pathlib
>>> with Store.open(pathlib.Path(tempfile.mkdtemp()) / "t.duckdb") as store:
...     store.count("exchanges")
0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from distillguard.errors import SchemaError, StoreError
from distillguard.schema import tables
from distillguard.signals import INPUT_COLUMNS

log = logging.getLogger(__name__)
STORAGE_VERSION = "v1.3.0"
"""DuckDB storage format of new stores: the oldest that compresses long strings (dictionary + FSST).

In the default (1.0) format prompts, answers and the request JSON were stored uncompressed: a
store of 322k exchanges took 558 MB, 178 MB in this one, and reading its text got faster. Files
stay readable by DuckDB 1.3 and later; a store made in the old format opens and works as before
(in its own format: delete it and ingest again to shrink it)."""


class Store:
    """A DuckDB database file with the distillguard tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path
        self._views = 0
        self._depth = 0

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False, memory_limit: str | None = None) -> Store:
        """Open (creating if needed) the store at ``path``.

        ``memory_limit`` (e.g. ``"6GB"``; default: the ``DISTILLGUARD_MEMORY_LIMIT``
        environment variable, else DuckDB's 80% of RAM) caps DuckDB's buffer pool;
        larger joins and aggregations spill to disk beside the store.
        """
        path = Path(path)
        memory_limit = memory_limit or os.environ.get("DISTILLGUARD_MEMORY_LIMIT")
        if read_only and not path.exists():
            raise StoreError(f"no store at {path} (run `distillguard ingest` or `scan` first)")
        try:
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(path), read_only=read_only,
                                 config={"storage_compatibility_version": STORAGE_VERSION})
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")  # the CLI draws its own
            if memory_limit:
                con.execute("SET memory_limit = ?", [memory_limit])
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        store = cls(con, path)
        if not read_only:
            store._create_tables()
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def _create_tables(self) -> None:
        for name, schema in tables().items():
            with self.registered(schema.empty_table()) as view:
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM {view}")
                self.add_missing_columns(name, f"SELECT * FROM {view}")

    # -- where the signals are -------------------------------------------------

    def keep_signals_at(self, path: str | None) -> None:
        """Remember that the signals of this store's exchanges are the Parquet files under ``path`` (a Spark
        scan's warehouse: they stay there, and the ``signals`` table is empty), or, with None, in the table."""
        self.con.execute("CREATE TABLE IF NOT EXISTS store_notes (name VARCHAR PRIMARY KEY, value VARCHAR)")
        if path is None:
            self.con.execute("DELETE FROM store_notes WHERE name = 'signals_at'")
        else:  # absolute: the console may run from another directory
            where = path if "://" in path else str(Path(path).resolve())
            self.con.execute("INSERT OR REPLACE INTO store_notes VALUES ('signals_at', ?)", [where])

    def signals_sql(self) -> str:
        """A relation over the signals for SQL on this store's connection: ``signals``, or after a Spark scan the
        Parquet files of its warehouse (``keep_signals_at``), where the driver can read them.

        >>> import tempfile
        >>> with Store.open(Path(tempfile.mkdtemp()) / "s.duckdb") as store:
        ...     store.signals_sql()
        'signals'
        """
        try:
            row = self.con.execute("SELECT value FROM store_notes WHERE name = 'signals_at'").fetchone()
        except duckdb.CatalogException:  # a store no Spark scan wrote
            return "signals"
        if row is None:  # no Spark scan, or a later scan refilled the table (its writers clear the note)
            return "signals"
        where = Path(str(row[0]).removeprefix("file://"))
        files = sorted(where.rglob("*.parquet")) if "://" not in str(row[0]) and where.is_dir() else []
        if not files:
            raise StoreError(f"the signals of store {self.path} are in a Spark warehouse this machine cannot read "
                             f"({row[0]}): scan with --engine duckdb, or read them where Spark runs")
        # The files listed, not a glob of the path: a folder named like run[1] is no pattern.
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        return f"(SELECT * FROM read_parquet([{listed}], union_by_name = true))"

    def add_missing_columns(self, name: str, declared: str) -> list[str]:
        """Add to table ``name`` the columns of the query ``declared`` it lacks (a store written by an earlier
        release); they are empty (NULL) in the rows already there. Returns the columns added."""
        have = {row[0] for row in self.con.execute(f"DESCRIBE {name}").fetchall()}
        added = []
        for column, sql_type, *_ in self.con.execute(f"DESCRIBE {declared}").fetchall():
            if column not in have:
                self.con.execute(f'ALTER TABLE {name} ADD COLUMN "{column}" {sql_type}')
                added.append(column)
        if added:
            log.warning("store %s: table %s predates column(s) %s, added: empty (NULL) in its rows so far, "
                        "filled in rows written from now on", self.path, name, ", ".join(added))
        return added

    # -- reading -------------------------------------------------------------

    def count(self, name: str) -> int:
        _check_name(name)
        row = self.con.execute(f"SELECT count(*) FROM {name}").fetchone()
        return int(row[0]) if row else 0

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """The whole table ``name`` as Arrow, cast to its declared schema."""
        _check_name(name)
        cols = ", ".join(columns) if columns else "*"
        table = self.con.execute(f"SELECT {cols} FROM {name}").to_arrow_table()
        schema = tables()[name]
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        return _conform(table, schema)

    def batches(
        self, name: str, columns: list[str], batch_rows: int = 50_000
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``columns`` of ``name`` in record batches (bounded memory)."""
        _check_name(name)
        cursor = self.con.cursor()
        reader = cursor.execute(f"SELECT {', '.join(columns)} FROM {name}").to_arrow_reader(
            batch_rows
        )
        yield from reader

    def query(self, sql: str) -> pa.Table:
        """Run read-only SQL against the store and return Arrow."""
        return self.con.execute(sql).to_arrow_table()

    # -- writing -------------------------------------------------------------

    def append(self, name: str, data: pa.Table | pa.RecordBatch, into: str | None = None) -> None:
        """Append ``data`` (conformed to table ``name``'s schema) to ``name``, or to ``into`` (see ``rebuilt``)."""
        _check_name(name)
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        _check_declared(name, data)
        data = _conform(data, tables()[name])
        with self.registered(data) as view:
            # By name: a store from an earlier release has its newer columns last (``add_missing_columns``).
            self.con.execute(f"INSERT INTO {into or name} BY NAME SELECT * FROM {view}")

    @contextmanager
    def rebuilt(self, name: str) -> Iterator[str]:
        """An empty copy of table ``name`` to fill batch by batch; it replaces ``name`` atomically at the end.

        Filling a large table inside one transaction makes DuckDB hold the whole
        transaction in memory (2 GB more for 10M enriched exchanges); the copy is
        filled in many small transactions instead, and an interrupted run leaves
        ``name`` as it was.
        """
        _check_name(name)
        staging = f"_rebuilt_{name}"
        self.con.execute(f"DROP TABLE IF EXISTS {staging}")
        with self.registered(tables()[name].empty_table()) as view:
            self.con.execute(f"CREATE TABLE {staging} AS SELECT * FROM {view}")
        try:
            yield staging
        except BaseException:
            self.con.execute(f"DROP TABLE IF EXISTS {staging}")
            raise
        with self.transaction():
            self.con.execute(f"DROP TABLE {name}")
            self.con.execute(f"ALTER TABLE {staging} RENAME TO {name}")

    def replace(self, name: str, data: pa.Table) -> None:
        """Replace the rows of ``name`` atomically."""
        with self.transaction():
            self.con.execute(f"DELETE FROM {name}")
            self.append(name, data)

    @contextmanager
    def registered(self, data: pa.Table) -> Iterator[str]:
        """Expose an Arrow table to SQL under a temporary view name."""
        self._views += 1
        view = f"_arrow_{self._views}"
        self.con.register(view, data)
        try:
            yield view
        finally:
            self.con.unregister(view)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nesting joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self.con.execute("COMMIT")


def _check_name(name: str) -> None:
    if name not in tables():
        raise SchemaError(f"unknown table {name!r}; known: {', '.join(tables())}")


def _check_declared(name: str, data: pa.Table) -> None:
    """A ``signals`` column the table lacks is a ``SchemaError``, not dropped: an enricher made it undeclared.

    Only the exchange columns the enrich stage reads may go (their text is not kept).
    """
    if name != "signals":
        return
    known = set(tables()[name].names) | set(INPUT_COLUMNS)
    extra = [c for c in data.column_names if c not in known]
    if extra:
        raise SchemaError(f"the signals table has no column(s) {extra}: declare them in the enricher's "
                          "`columns` (name → Arrow type)")


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder and cast ``table`` to ``schema``, naming any missing column."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"table lacks column(s) {missing}; expected {schema.names}")
    table = table.select(schema.names)
    try:
        return table.cast(pa.schema([pa.field(f.name, f.type) for f in schema]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"cannot cast columns to the store schema: {exc}") from exc
