"""Worker processes give exactly the batches a serial read gives, in file order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.config import IngestSettings
from distillguard.ingest import batches
from distillguard.ingest.tables import EXCHANGE_TABLE


def _shard(path: Path, first: int, n: int) -> Path:
    lines = [json.dumps({"exchange_id": f"e{i}", "timestamp": "2026-02-01T12:00:00Z", "account_id": f"a{i % 3}",
                         "request": {"prompt": f"q{i}"}}) for i in range(first, first + n)]
    lines.insert(2, "not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_workers_give_the_serial_batches_in_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [_shard(tmp_path / f"{k}.jsonl", 100 * k, 25 + k) for k in range(3)]
    settings = IngestSettings(batch_rows=10)
    serial = list(batches.parallel_batches(files, EXCHANGE_TABLE, settings=settings, workers=1))
    monkeypatch.setattr(batches, "PARALLEL_MIN_BYTES", 0)  # these files are far below the size worth workers
    parallel = list(batches.parallel_batches(files, EXCHANGE_TABLE, settings=settings, workers=2))
    assert [b.rows.to_pylist() if b.rows is not None else None for b in parallel] == \
        [b.rows.to_pylist() if b.rows is not None else None for b in serial]
    assert [b.bad for b in parallel] == [b.bad for b in serial]
    assert sum(b.read for b in serial) == 25 + 26 + 27 and sum(len(b.bad) for b in serial) == 3
