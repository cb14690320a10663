"""Every kind of malformed line is quarantined with file, line and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.config import IngestSettings
from distillguard.errors import InputError
from distillguard.ingest import ingest_traffic_dir
from distillguard.store import Store

GOOD = {"timestamp": "2026-02-01T12:00:00Z", "account_id": "a",
        "request": {"messages": [{"role": "user", "content": "hi"}]}}

BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "invalid JSON"),
    (json.dumps({**GOOD, "account_id": None}).encode(), "missing required field 'account_id'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "timestamp"}).encode(),
     "missing required field 'timestamp'"),
    (json.dumps({**GOOD, "account_id": 42}).encode(), "field 'account_id' must be a string, got int"),
    (json.dumps({**GOOD, "timestamp": "yesterday"}).encode(), "is not an RFC 3339 time"),
    (json.dumps({**GOOD, "timestamp": "2026-02-01T12:00:00"}).encode(), "has no UTC offset"),
    (json.dumps({**GOOD, "request": {"messages": "hi"}}).encode(), "'request.messages' must be a list"),
    (json.dumps({**GOOD, "request": {"messages": [{"role": "bot", "content": "x"}]}}).encode(),
     "'request.messages[0].role' is 'bot'"),
    (json.dumps({**GOOD, "client": {"asn": "AS1"}}).encode(), "field 'client.asn' must be an integer"),
    (json.dumps([1, 2]).encode(), "expected a JSON object, got list"),
    (b'{"account_id": "a\xff", "timestamp": "2026-02-01T12:00:00Z"}', "invalid UTF-8"),
]


def _run(tmp_path: Path, content: bytes, **settings: int) -> list[dict[str, object]]:
    traffic = tmp_path / "t"
    traffic.mkdir(exist_ok=True)
    (traffic / "exchanges.jsonl").write_bytes(content)
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(traffic, store, IngestSettings(**settings))
        rows = store.query("SELECT file, line, reason FROM quarantine ORDER BY line").to_pylist()
        assert report.quarantined == len(rows)
        return rows


def test_each_reason_is_quarantined_with_its_line(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD).encode()]
    for bad, _ in BAD_LINES:
        lines += [bad, json.dumps(GOOD).encode()]
    rows = _run(tmp_path, b"\n".join(lines) + b"\n")
    assert [r["line"] for r in rows] == [2 + 2 * i for i in range(len(BAD_LINES))]
    for row, (_, reason) in zip(rows, BAD_LINES, strict=True):
        assert reason in row["reason"], row
        assert str(row["file"]).endswith("exchanges.jsonl")


def test_truncated_last_line(tmp_path: Path) -> None:
    rows = _run(tmp_path, json.dumps(GOOD).encode() + b'\n{"account_id": "a", "times')
    assert rows == [{"file": str(tmp_path / "t" / "exchanges.jsonl"), "line": 2,
                     "reason": rows[0]["reason"]}]
    assert rows[0]["reason"].startswith("truncated last line")


def test_last_line_without_newline_but_complete_is_kept(tmp_path: Path) -> None:
    assert _run(tmp_path, json.dumps(GOOD).encode()) == []


def test_fifty_megabyte_line_is_quarantined_not_loaded(tmp_path: Path) -> None:
    huge = json.dumps({**GOOD, "pad": "x" * (50 * 1024 * 1024)}).encode()
    rows = _run(tmp_path, json.dumps(GOOD).encode() + b"\n" + huge + b"\n" + json.dumps(GOOD).encode() + b"\n")
    assert [r["line"] for r in rows] == [2]
    assert "line too long" in str(rows[0]["reason"])


def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="not found"):
        ingest_traffic_dir(tmp_path / "nope", store)


def test_directory_without_exchanges(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="no exchanges"):
        ingest_traffic_dir(tmp_path, store)


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "exchanges.parquet").write_bytes(b"not parquet at all")
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="cannot read Parquet"):
        ingest_traffic_dir(tmp_path / "t", store)
