"""Find the files of a traffic directory and decode their records: the reader's first two stages.

A traffic directory holds ``exchanges`` (required), ``accounts`` and ``events``
(optional) as JSONL (plain, ``.gz``, ``.zst``), Parquet, or a folder of such
shards (see the exchange-log spec). Records come out with their file and line
(row number for Parquet), or as a ``Bad`` giving the quarantine reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import InputError
from distillguard.ingest.lines import BadLine, Line, read_lines
from distillguard.ingest.salvage import salvage_json

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")


@dataclass(frozen=True)
class Record:
    """One decoded record and where it came from."""

    file: str
    line: int
    value: Any
    raw: bytes | None  # the line's bytes (JSONL) for stable derived ids
    notes: tuple[str, ...] = ()  # what the reader had to cut or replace to read it

    def bad(self, reason: str) -> Bad:
        """This record, quarantined for ``reason``."""
        return Bad(self.file, self.line, reason, _excerpt(self.raw) if self.raw else "")


@dataclass(frozen=True)
class Bad:
    """A quarantined row; ``line`` 0 stands for the whole file (one that cannot be read at all)."""

    file: str
    line: int
    reason: str
    excerpt: str


def find_files(traffic_dir: Path, kind: str) -> list[Path]:
    """Files holding ``kind`` rows: ``kind.<suffix>`` and shards in ``kind/``.

    A dangling link with a shard's name is listed too: reading it then
    quarantines it as one entry, rather than skip it unseen.
    """
    found = [traffic_dir / f"{kind}{s}" for s in SUFFIXES if (traffic_dir / f"{kind}{s}").is_file()]
    shard_dir = traffic_dir / kind
    if shard_dir.is_dir():
        found += sorted(p for p in shard_dir.rglob("*") if p.name.endswith(SUFFIXES)
                        and (p.is_file() or (p.is_symlink() and not p.exists())))
    return found


def iter_records(path: Path, max_line_bytes: int, batch_rows: int = 10_000) -> Iterator[Record | Bad]:
    """Every record of one file, in order, with its location."""
    if path.name.endswith(".parquet"):
        yield from _parquet_records(path, batch_rows)
    else:
        yield from _jsonl_records(path, max_line_bytes)


def _jsonl_records(path: Path, max_line_bytes: int) -> Iterator[Record | Bad]:
    name = str(path)
    try:
        for item in read_lines(path, max_line_bytes):
            if isinstance(item, BadLine):
                yield Bad(name, item.number, item.reason, _excerpt(item.excerpt))
                continue
            yield _decode(name, item)
    except InputError as exc:  # the file cannot be opened
        yield Bad(name, 0, str(exc), "")


def _decode(name: str, item: Line) -> Record | Bad:
    try:
        text = item.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Bad(name, item.number, f"invalid UTF-8 at byte {exc.start} of the line", _excerpt(item.data))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        salvaged = salvage_json(item.data, str(exc))
        if salvaged is not None:
            return Record(name, item.number, salvaged[0], item.data, (*item.notes, salvaged[1]))
        reason = f"invalid JSON: {exc}"
        if item.last_without_newline:
            reason = f"truncated last line (no newline at end of file): {reason}"
        return Bad(name, item.number, reason, _excerpt(item.data))
    return Record(name, item.number, value, item.data, item.notes)


def _parquet_records(path: Path, batch_rows: int) -> Iterator[Record | Bad]:
    """Rows of a Parquet file as JSON objects, numbered from 1.

    DuckDB renders each nested row to JSON text in C++ and orjson decodes it:
    several times faster than ``pyarrow``'s ``to_pylist`` on nested structs,
    and the rows then go through exactly the same validation as JSONL lines.
    """
    name = str(path)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        # Insertion order is preserved (DuckDB's default); rows carry their number anyway.
        reader = con.execute(
            "SELECT file_row_number AS n, to_json(t) AS j FROM read_parquet(?, file_row_number = true) t",
            [name],
        ).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        con.close()
        yield Bad(name, 0, f"cannot read Parquet file{_of_rows(path, ' (', ' rows)')}: {_first_line(exc)}", "")
        return
    last = 0
    try:
        for batch in reader:
            for n, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                last = n + 1
                yield parquet_record(name, last, text)
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        yield Bad(name, last + 1, f"unreadable Parquet data from row {last + 1} on{_of_rows(path, ' of ')}: "
                                  f"{_first_line(exc)}", "")
    finally:
        con.close()


def parquet_record(name: str, line: int, text: str) -> Record | Bad:
    """One Parquet row, rendered to JSON by DuckDB's ``to_json``, as the record JSONL would give."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:  # a NaN or infinite float has no JSON form
        return Bad(name, line, f"row is not representable as JSON (NaN or infinite number?): {exc}",
                   _excerpt(text.encode()))
    value.pop("file_row_number", None)
    return Record(name, line, _drop_nulls(value), None)


def _drop_nulls(value: Any) -> Any:
    """Parquet rows carry every column; a null top-level field is an absent one."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None or k == "response"}
    return value


def _of_rows(path: Path, before: str, after: str = "") -> str:
    """The file's row count (from its footer) between ``before`` and ``after``; nothing when unreadable."""
    try:
        return f"{before}{pq.ParquetFile(path).metadata.num_rows:,}{after}"
    except (pa.ArrowException, OSError):
        return ""


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0]


def _excerpt(data: bytes, limit: int = 200) -> str:
    return data[:limit].decode("utf-8", errors="replace").rstrip("\n")
