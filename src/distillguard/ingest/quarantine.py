"""The one sink of bad rows: every stage's ``Bad`` ends in the ``quarantine`` table.

Rows are buffered and appended in chunks, in the order they were met; a file
about to be re-read first loses its earlier entries, so re-ingest does not
count its bad rows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.ingest.sources import Bad
from distillguard.schema import QUARANTINE
from distillguard.store import Store

log = logging.getLogger(__name__)
_FLUSH_ROWS = 10_000


class Quarantine:
    """Buffers bad rows of every table and writes them to the ``quarantine`` table."""

    def __init__(self, store: Store, excerpt_chars: int) -> None:
        self.store, self.excerpt_chars = store, excerpt_chars
        self.rows: list[dict[str, Any]] = []
        self.count = 0

    def forget(self, files: Iterable[Path]) -> None:
        """Drop earlier quarantine rows of files about to be re-read."""
        names = [str(p) for p in files]
        self.store.con.execute("DELETE FROM quarantine WHERE list_contains(?, file)", [names])

    def add(self, bad: Iterable[Bad], kind: str) -> None:
        """Quarantine ``bad`` rows of table ``kind``, keeping at most ``excerpt_chars`` of each excerpt."""
        for item in bad:
            self.count += 1
            log.debug("quarantined %s:%d: %s", item.file, item.line, item.reason)
            self.rows.append({"file": item.file, "line": item.line, "reason": item.reason, "kind": kind,
                              "excerpt": item.excerpt[: self.excerpt_chars]})
            if len(self.rows) >= _FLUSH_ROWS:
                self.flush()

    def flush(self) -> None:
        """Append the buffered rows to the store."""
        if self.rows:
            self.store.append("quarantine", pa.Table.from_pylist(self.rows, schema=QUARANTINE))
            self.rows.clear()
