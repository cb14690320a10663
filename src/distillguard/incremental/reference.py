"""The reference period's own store (``<db>.reference.duckdb``): prepared once, rebuilt when it changes.

A scan with ``--reference`` prepares that period (ingest, enrich, features, links) in a store
beside the scan's. The store remembers what it was prepared from (``ledger.fingerprint`` of the
reference's files, the settings that shape preparation and the version): the next scan with the
same reference reuses it as it is (an hourly scan does not prepare last month again), and a scan
with another reference, changed files or other settings deletes it and prepares afresh. (It was
appended to before: a second reference's exchanges joined the first's.)

>>> import tempfile
>>> tmp = Path(tempfile.mkdtemp())
>>> (tmp / "ref").mkdir()
>>> _ = (tmp / "ref" / "exchanges.jsonl").write_text("")
>>> with reference_store(tmp / "s.reference.duckdb", tmp / "ref", Settings()) as (store, ready):
...     ready
False
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import distillguard
from distillguard.config import Settings
from distillguard.incremental.ledger import Ledger, fingerprint
from distillguard.ingest.sources import find_files
from distillguard.ingest.tables import TABLES
from distillguard.store import Store

__all__ = ["reference_key", "reference_store"]

log = logging.getLogger(__name__)
_MARK = "prepared_reference"


def reference_key(reference_dir: Path, settings: Settings) -> str:
    """What a prepared reference depends on: its files, the settings that shape preparation, the version."""
    files = {kind.name: find_files(Path(reference_dir), kind.name) for kind in TABLES}
    shaping = settings.model_dump(mode="json", include={"ingest", "detect", "link"})
    return fingerprint(files, shaping, distillguard.__version__)


@contextmanager
def reference_store(path: Path, reference_dir: Path, settings: Settings) -> Iterator[tuple[Store, bool]]:
    """The store at ``path`` for ``reference_dir``, and whether it holds that reference prepared already.

    A store prepared from anything else is deleted first. Once the block ends without an error the
    store is marked as prepared from ``reference_dir`` (an interrupted preparation is redone).
    """
    key = reference_key(reference_dir, settings)
    store = Store.open(path)
    try:
        ready = Ledger(store).marked(_MARK) == key
        if not ready and (store.count("exchanges") or Ledger(store).marked(_MARK) is not None):
            log.info("reference store %s was prepared from other traffic or settings: rebuilt", path)
            store.close()
            for stale in (path, path.with_name(path.name + ".wal")):
                stale.unlink(missing_ok=True)
            store = Store.open(path)
        yield store, ready
        if not ready:
            Ledger(store).mark(_MARK, key)
    finally:
        store.close()
