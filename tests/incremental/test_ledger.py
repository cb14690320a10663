"""The ingest ledger reads each file once, and again only when its bytes change."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

from distillguard.incremental.ledger import Ledger, partition_date
from distillguard.store import Store


def _files(root: Path) -> dict[str, list[Path]]:
    return {"exchanges": sorted((root / "exchanges").rglob("*.jsonl")),
            "accounts": sorted(root.glob("accounts*.jsonl")), "events": []}


def _read(ledger: Ledger, root: Path, **kw: object) -> dict[str, list[str]]:
    unseen = ledger.unseen(_files(root), **kw)  # type: ignore[arg-type]
    ledger.record()
    return {k: [p.name for p in v] for k, v in unseen.items()}


def test_new_changed_touched_and_copied_files(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    (root / "exchanges").mkdir(parents=True)
    seg = root / "exchanges" / "seg-1.jsonl"
    seg.write_text('{"a": 1}\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        ledger = Ledger(store)
        assert _read(ledger, root)["exchanges"] == ["seg-1.jsonl"]
        assert _read(ledger, root)["exchanges"] == []
        os.utime(seg, ns=(1, 1))  # touched, same bytes: not read again
        assert _read(ledger, root)["exchanges"] == []
        shutil.copy(seg, root / "exchanges" / "seg-copy.jsonl")  # the same bytes elsewhere: not read again
        assert _read(ledger, root)["exchanges"] == []
        with seg.open("a") as f:  # a segment the gateway is still appending to
            f.write('{"a": 2}\n')
        assert _read(ledger, root)["exchanges"] == ["seg-1.jsonl"]
        (root / "exchanges" / "seg-2.jsonl").write_text('{"a": 3}\n')
        assert _read(ledger, root)["exchanges"] == ["seg-2.jsonl"]


def test_a_file_is_only_remembered_once_recorded(tmp_path: Path) -> None:
    """A scan that stops before ``record`` (interrupted) reads the same files next time."""
    root = tmp_path / "logs"
    (root / "exchanges").mkdir(parents=True)
    (root / "exchanges" / "seg.jsonl").write_text("{}\n")
    with Store.open(tmp_path / "s.duckdb") as store:
        ledger = Ledger(store)
        assert [p.name for p in ledger.unseen(_files(root))["exchanges"]] == ["seg.jsonl"]
        assert [p.name for p in Ledger(store).unseen(_files(root))["exchanges"]] == ["seg.jsonl"]


def test_accounts_are_read_whole_when_one_of_their_files_changes(tmp_path: Path) -> None:
    """The last row per account wins over all its files, so they are read again together."""
    root = tmp_path / "logs"
    (root / "exchanges").mkdir(parents=True)
    (root / "accounts-a.jsonl").write_text('{"account_id": "a"}\n')
    (root / "accounts-b.jsonl").write_text('{"account_id": "b"}\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        ledger = Ledger(store)
        assert _read(ledger, root)["accounts"] == ["accounts-a.jsonl", "accounts-b.jsonl"]
        assert _read(ledger, root)["accounts"] == []
        (root / "accounts-b.jsonl").write_text('{"account_id": "b", "tier": "paid"}\n')
        assert _read(ledger, root)["accounts"] == ["accounts-a.jsonl", "accounts-b.jsonl"]


def test_partitions_before_the_window_are_left_out(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for day in ("2026-02-01", "2026-02-05"):
        (root / "exchanges" / f"date={day}").mkdir(parents=True)
        (root / "exchanges" / f"date={day}" / "part.jsonl").write_text(f'{{"d": "{day}"}}\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        unseen = Ledger(store).unseen(_files(root), not_before=date(2026, 2, 3))
    assert [partition_date(p) for p in unseen["exchanges"]] == [date(2026, 2, 5)]
