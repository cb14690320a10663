"""The ingest ledger: which files a store has read, so an incremental scan reads only what is new.

Each file read is remembered by path, size, modification time and SHA-256 of its bytes
(``ingest_ledger``). A file is *seen* when its path, size and time match a row (nothing
is read), or when its bytes hash to a row's (a file touched or copied but not changed).
Anything else is new: a new file, a partition folder that appeared
(``exchanges/date=2026-02-03/part-0.parquet``), or a segment the gateway is still
appending to (``exchanges/seg-*.jsonl``: read again whole; exchange ids already stored
are not added twice). The tables read whole, ``accounts`` and ``events`` (the last row
for a key wins over all their files), are read again whole when any of their files is new.

``marks`` keeps what the store was prepared from: a reference store is rebuilt when its
files or the settings it was prepared with change (``fingerprint``).

>>> import tempfile
>>> from distillguard.store import Store
>>> tmp = Path(tempfile.mkdtemp())
>>> (tmp / "exchanges").mkdir()
>>> _ = (tmp / "exchanges" / "a.jsonl").write_text("{}\\n")
>>> with Store.open(tmp / "s.duckdb") as store:
...     ledger = Ledger(store)
...     files = {"exchanges": [tmp / "exchanges" / "a.jsonl"], "accounts": [], "events": []}
...     first = ledger.unseen(files)
...     ledger.record()
...     again = ledger.unseen(files)
>>> [p.name for p in first["exchanges"]], again["exchanges"]
(['a.jsonl'], [])
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from distillguard.store import Store

__all__ = ["WHOLE_TABLES", "FileState", "Ledger", "fingerprint", "partition_date"]

log = logging.getLogger(__name__)
WHOLE_TABLES = ("accounts", "events")
"""Tables whose rows replace earlier ones by key over all their files: read again whole when one changes."""
_DATE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """What the ledger keeps of one file."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    sha256: str


class Ledger:
    """The files ``store`` has read (``ingest_ledger``) and what it was prepared from (``ledger_marks``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.con.execute("""CREATE TABLE IF NOT EXISTS ingest_ledger (
            path VARCHAR PRIMARY KEY, kind VARCHAR, size BIGINT, mtime_ns BIGINT, sha256 VARCHAR,
            ingested_at TIMESTAMPTZ)""")
        store.con.execute("CREATE TABLE IF NOT EXISTS ledger_marks (name VARCHAR PRIMARY KEY, value VARCHAR)")
        self._pending: list[FileState] = []

    def known(self) -> dict[str, FileState]:
        """Every file read so far, by path."""
        rows = self.store.con.execute("SELECT path, kind, size, mtime_ns, sha256 FROM ingest_ledger").fetchall()
        return {r[0]: FileState(*r) for r in rows}

    def unseen(self, files: dict[str, list[Path]], *, not_before: date | None = None) -> dict[str, list[Path]]:
        """The files of each table not read before (see the module); ``record`` them once ingested.

        ``not_before``: files in ``date=YYYY-MM-DD`` partition folders before this day are left out
        (they fall outside the scan's window).
        """
        known = self.known()
        hashes = {s.sha256 for s in known.values()}
        out: dict[str, list[Path]] = {}
        self._pending = []
        for kind, paths in files.items():
            fresh = []
            for path in paths:
                day = partition_date(path)
                if not_before is not None and day is not None and day < not_before:
                    continue
                state = _state(path, kind, known.get(str(path)))
                if state is None:
                    fresh.append(path)  # unreadable: ingest quarantines it, and it is tried again next time
                    continue
                before = known.get(state.path)
                if before is not None and (before.size, before.mtime_ns) == (state.size, state.mtime_ns):
                    continue
                self._pending.append(state)
                if state.sha256 in hashes and (before is None or before.sha256 == state.sha256):
                    continue  # same bytes as a file already read (touched, or copied here)
                fresh.append(path)
            if kind in WHOLE_TABLES and fresh:
                fresh = list(paths)
            out[kind] = fresh
        log.info("ledger: %s", ", ".join(f"{len(v)} new {k} file(s)" for k, v in out.items()))
        return out

    def record(self) -> None:
        """Remember the files ``unseen`` last found, once they are read.

        Their states were taken before reading, so a file written to meanwhile is read again next time.
        """
        if not self._pending:
            return
        now = datetime.now(UTC)
        rows = [(s.path, s.kind, s.size, s.mtime_ns, s.sha256, now) for s in self._pending]
        with self.store.transaction():
            self.store.con.executemany("INSERT OR REPLACE INTO ingest_ledger VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._pending = []

    def mark(self, name: str, value: str) -> None:
        """Remember ``value`` under ``name`` (what the store was prepared from)."""
        self.store.con.execute("INSERT OR REPLACE INTO ledger_marks VALUES (?, ?)", [name, value])

    def marked(self, name: str) -> str | None:
        """The value remembered under ``name``, if any."""
        row = self.store.con.execute("SELECT value FROM ledger_marks WHERE name = ?", [name]).fetchone()
        return None if row is None else str(row[0])


def fingerprint(files: dict[str, list[Path]], *extra: object) -> str:
    """A digest of ``files`` (paths, sizes, modification times) and ``extra`` (settings, version).

    >>> fingerprint({"exchanges": []}, "v1") == fingerprint({"exchanges": []}, "v1")
    True
    """
    parts: list[object] = []
    for kind in sorted(files):
        for path in sorted(files[kind]):
            try:
                stat = path.stat()
                parts.append([kind, str(path), stat.st_size, stat.st_mtime_ns])
            except OSError:
                parts.append([kind, str(path), None, None])
    parts.extend(extra)
    return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()


def partition_date(path: Path) -> date | None:
    """The day of the innermost ``date=YYYY-MM-DD`` folder ``path`` is in (hive-style partitions), if any.

    >>> partition_date(Path("logs/exchanges/date=2026-02-03/part-0.parquet"))
    datetime.date(2026, 2, 3)
    >>> partition_date(Path("logs/exchanges/part-0.parquet")) is None
    True
    """
    for parent in path.parents:
        match = _DATE.match(parent.name)
        if match:
            try:
                return date.fromisoformat(match.group(1))
            except ValueError:
                return None
    return None


def _state(path: Path, kind: str, before: FileState | None) -> FileState | None:
    """``path``'s state now; the hash is only computed when size or time differ from ``before``."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if before is not None and (before.size, before.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return before
    try:
        digest = _sha256(path)
    except OSError:
        return None
    return FileState(str(path), kind, stat.st_size, stat.st_mtime_ns, digest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
