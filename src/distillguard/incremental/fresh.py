"""New exchanges: the ones an incremental scan has not enriched yet, enriched and appended to ``signals``.

Enrichment is per exchange and stateless (``signals``), so the signals of the stored exchanges
never change: only the exchanges without a signals row are enriched, and their (account, day)
pairs are what the per-day aggregates must redo (``daily.refresh``).

>>> import tempfile
>>> from distillguard.store import Store
>>> with Store.open(Path(tempfile.mkdtemp()) / "s.duckdb") as store:
...     enrich_new(store).pairs
0
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from distillguard.signals import INPUT_COLUMNS
from distillguard.signals.parallel import enrich_batches
from distillguard.stages import PARALLEL_ENRICH_ROWS, Progress
from distillguard.store import Store

__all__ = ["TOUCHED", "Fresh", "enrich_new", "touch_all"]

TOUCHED = "_touched"
"""Temporary table of the (account_id, day) pairs new exchanges fell in."""
_FRESH = "_incremental_fresh"


@dataclass(frozen=True)
class Fresh:
    """What ``enrich_new`` did: exchanges enriched, and (account, day) pairs in ``TOUCHED``."""

    exchanges: int
    pairs: int


def enrich_new(
    store: Store, *, files: list[Path] | None = None, batch_rows: int = 50_000, progress: Progress | None = None
) -> Fresh:
    """Enrich the stored exchanges that have no signals yet; fill ``TOUCHED``.

    ``files``: look only among the exchanges read from these files (what this scan ingested;
    None: every exchange, as on a store's first incremental scan).
    """
    con = store.con
    among = "list_contains(?, e.source_file) AND " if files is not None else ""
    # A table, not a temporary one: the batches are read on a cursor of their own (another connection).
    con.execute(f"""CREATE OR REPLACE TABLE {_FRESH} AS SELECT e.exchange_id FROM exchanges e
                    WHERE {among}NOT EXISTS (SELECT 1 FROM signals s WHERE s.exchange_id = e.exchange_id)""",
                [[str(p) for p in files]] if files is not None else [])
    row = con.execute(f"SELECT count(*) FROM {_FRESH}").fetchone()
    total = int(row[0]) if row else 0
    pairs: list[pa.Table] = []
    if total:
        workers = (os.cpu_count() or 1) if total >= PARALLEL_ENRICH_ROWS else 1
        cols = ", ".join(f"e.{c}" for c in INPUT_COLUMNS)
        source = f"SELECT {cols} FROM exchanges e SEMI JOIN {_FRESH} f ON e.exchange_id = f.exchange_id"
        # Batch by batch, each in its own transaction: an interrupted run leaves whole batches, and the
        # next finds the exchanges still without signals.
        store.keep_signals_at(None)  # the table holds them from now on (after a Spark scan it was emptied)
        for table in enrich_batches(_batches(store, source, batch_rows), workers):
            store.append("signals", table)
            pairs.append(table.select(["account_id", "day_index"]).group_by(["account_id", "day_index"])
                         .aggregate([]))
            if progress:
                progress("enrich", table.num_rows, total)
    touched = (pa.concat_tables(pairs).group_by(["account_id", "day_index"]).aggregate([]) if pairs
               else pa.table({"account_id": pa.array([], pa.string()), "day_index": pa.array([], pa.int64())}))
    with store.registered(touched) as view:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TOUCHED} AS SELECT account_id, day_index AS day FROM {view}")
    con.execute(f"DROP TABLE {_FRESH}")
    return Fresh(total, touched.num_rows)


def touch_all(store: Store) -> int:
    """Fill ``TOUCHED`` with every (account, day) pair of the stored signals (aggregating the store anew)."""
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE {TOUCHED} AS "
                      "SELECT DISTINCT account_id, day_index AS day FROM signals")
    row = store.con.execute(f"SELECT count(*) FROM {TOUCHED}").fetchone()
    return int(row[0]) if row else 0


def _batches(store: Store, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``sql`` in record batches on a cursor of its own."""
    cursor = store.con.cursor()
    try:
        yield from cursor.execute(sql).to_arrow_reader(batch_rows)
    finally:
        cursor.close()
