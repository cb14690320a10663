"""Store one batch of a table in one transaction: the reader's last stage.

Exchanges (``first_wins``): only rows with a new ``exchange_id`` are inserted,
the first by file and line when a batch repeats one, so re-ingesting the same
data adds nothing; duplicates are found on (id, line) pairs only, so no wide
row is held for it and DuckDB spills to disk. Accounts and events: the last
row per key replaces any stored one (a later line corrects an earlier one).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from distillguard.ingest.batches import Batch
from distillguard.ingest.tables import TableKind
from distillguard.store import Store

__all__ = ["write_batch"]


def write_batch(store: Store, kind: TableKind, batch: Batch) -> int:
    """Store ``batch`` in ``kind``'s table; return the rows it added (first wins) or wrote (last wins)."""
    if batch.rows is None and batch.flattened is None:
        return 0
    rows = batch.rows if batch.rows is not None else pa.Table.from_pylist([], schema=kind.schema)
    with store.transaction(), store.registered(rows) as view:
        if not kind.first_wins:
            _replace_by_key(store, kind, view)
            return int(rows.num_rows)
        if batch.flattened is None:
            return _insert_new(store, f"SELECT * FROM {view}")
        flat = batch.flattened
        return _insert_new(store, f"{flat.select} UNION ALL BY NAME SELECT * FROM {view}", flat.params)


def _insert_new(store: Store, source: str, params: list[Any] | None = None) -> int:
    """Insert the exchanges of ``source`` whose id is new; the first by file and line wins."""
    before = store.count("exchanges")
    store.con.execute(
        f"""INSERT INTO exchanges
            WITH b AS ({source}),
            firsts AS (SELECT exchange_id, arg_min(source_line, (source_file, source_line)) AS line,
                              min(source_file) AS file
                       FROM b GROUP BY exchange_id)
            SELECT b.* FROM b JOIN firsts f
              ON b.exchange_id = f.exchange_id AND b.source_line = f.line AND b.source_file = f.file
            WHERE NOT EXISTS (SELECT 1 FROM exchanges e WHERE e.exchange_id = b.exchange_id)""",
        params or [],
    )
    return store.count("exchanges") - before


def _replace_by_key(store: Store, kind: TableKind, view: str) -> None:
    """Keep the last row per key of ``view`` and put it in place of any stored row with that key."""
    key = ", ".join(kind.key)
    store.con.execute(
        f"""CREATE TEMP TABLE _new AS SELECT * EXCLUDE (_i) FROM (
              SELECT *, row_number() OVER () AS _i FROM {view})
            QUALIFY _i = max(_i) OVER (PARTITION BY {key})"""
    )
    same = " AND ".join(f"t.{k} IS NOT DISTINCT FROM n.{k}" for k in kind.key)
    store.con.execute(f"DELETE FROM {kind.name} t WHERE EXISTS (SELECT 1 FROM _new n WHERE {same})")
    store.con.execute(f"INSERT INTO {kind.name} BY NAME SELECT * FROM _new")  # by name: see Store.append
    store.con.execute("DROP TABLE _new")
