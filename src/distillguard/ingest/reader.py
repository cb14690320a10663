"""Pick a decoder for each file of a table and yield its batches, in file order.

Files are taken in order, so which duplicate wins does not depend on the path
a file took. Three ways through, one shape out (``Batch``):

- a small table (``first_wins`` False): every file decoded record by record, one batch;
- a Parquet file whose layout ``kind.flatten`` handles: the columnar decoder,
  where DuckDB flattens the usual rows from their typed columns (``Flattened``)
  and only the rows it cannot flatten exactly are validated in Python;
- any other run of files: decoded record by record, in worker processes when
  the run is large (``batches.parallel_batches``).

A file DuckDB cannot read in the columnar decoder is read record by record
instead, which quarantines what is unreadable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.config import IngestSettings
from distillguard.ingest.batches import Batch, Flattened, batched, file_batches, parallel_batches
from distillguard.ingest.columnar import Flatten
from distillguard.ingest.sources import iter_records, parquet_record
from distillguard.ingest.tables import TableKind

log = logging.getLogger(__name__)
_READ_ERRORS = (duckdb.Error, pa.ArrowException, OSError)
"""What DuckDB or Arrow raise on a file they cannot read; the file is then read record by record."""


def read_table(
    kind: TableKind, files: list[Path], *, con: duckdb.DuckDBPyConnection, settings: IngestSettings,
    columnar: bool = True,
) -> Iterator[Batch]:
    """The batches of ``kind``'s ``files``, in order; ``con`` runs the columnar decoder.

    ``columnar`` False reads every Parquet row through ``kind.row``: the reference
    the columnar decoder is tested against.
    """
    if not kind.first_wins:
        records = chain.from_iterable(iter_records(path, settings.max_line_bytes) for path in files)
        yield from batched(records, kind, size=None)
        return
    for flatten, run in _runs(files, kind, columnar):
        if flatten is None:
            yield from parallel_batches(run, kind, settings=settings)
        elif (batch := _columnar_batch(con, run[0], flatten, kind)) is not None:
            yield batch
        else:
            yield from file_batches(run[0], kind, settings)


def _runs(files: list[Path], kind: TableKind, columnar: bool) -> list[tuple[Flatten | None, list[Path]]]:
    """``files`` in order, as single columnar Parquet files and runs of files read record by record."""
    runs: list[tuple[Flatten | None, list[Path]]] = []
    for path in files:
        flatten = _flatten_for(path, kind) if columnar else None
        if flatten is None and runs and runs[-1][0] is None:
            runs[-1][1].append(path)
        else:
            runs.append((flatten, [path]))
    return runs


def _flatten_for(path: Path, kind: TableKind) -> Flatten | None:
    if kind.flatten is None or not path.name.endswith(".parquet"):
        return None
    try:
        flatten = kind.flatten(pq.read_schema(path))
    except (pa.ArrowException, OSError):
        return None  # reading it record by record reports the file as unreadable
    if flatten is None:
        log.debug("%s: a layout the columnar decoder does not flatten: read record by record", path)
    return flatten


def _columnar_batch(con: duckdb.DuckDBPyConnection, path: Path, flatten: Flatten, kind: TableKind) -> Batch | None:
    """One Parquet file as one batch: DuckDB flattens the rows ``flatten.ok`` accepts, the others are validated.

    None when DuckDB cannot read the file (nothing is quarantined: reading it
    record by record then does).
    """
    name = str(path)
    source = "read_parquet(?, file_row_number = true) t"
    try:
        odd = con.execute(
            f"SELECT file_row_number + 1 AS n, to_json(t) AS j FROM {source} WHERE NOT ({flatten.ok})", [name]
        ).to_arrow_table()
        records = (parquet_record(name, n, text)
                   for n, text in zip(odd.column("n").to_pylist(), odd.column("j").to_pylist(), strict=True))
        validated = next(batched(records, kind, size=None), Batch(None))
        rows = validated.rows if validated.rows is not None else pa.Table.from_pylist([], schema=kind.schema)
        total = pq.ParquetFile(path).metadata.num_rows
    except _READ_ERRORS as exc:
        log.info("%s: read record by record (%s)", path, exc)
        return None
    select = (f"SELECT {flatten.columns}, ? AS source_file, file_row_number + 1 AS source_line "
              f"FROM {source} WHERE {flatten.ok}")
    return Batch(rows, validated.bad, Flattened(path, select, [name, name], total - odd.num_rows))
