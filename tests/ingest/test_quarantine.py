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
    (json.dumps({**GOOD, "client": {"asn": "AS1"}}).encode(), "field 'client.asn' must be an integer"),
    (json.dumps({**GOOD, "timestamp": "9999-12-31T23:59:59Z"}).encode(), "'timestamp' is out of range"),
    (json.dumps({**GOOD, "timestamp": "2300-01-01T00:00:00Z"}).encode(), "'timestamp' is out of range"),
    (json.dumps({**GOOD, "timestamp": "0001-01-01T00:00:00Z"}).encode(), "'timestamp' is out of range"),
    (json.dumps({**GOOD, "timestamp": "0001-01-01T00:00:00+01:00"}).encode(), "'timestamp' is out of range"),
    (json.dumps({**GOOD, "response": {"usage": {"input_tokens": -5}}}).encode(),
     "'response.usage.input_tokens' is negative: -5"),
    (json.dumps({**GOOD, "response": {"usage": {"input_tokens": 3, "completion_tokens": -1}}}).encode(),
     "'response.usage.completion_tokens' is negative: -1"),
    (json.dumps([1, 2]).encode(), "expected a JSON object, got list"),
    (b'{"account_id": "a\xff", "timestamp": "2026-02-01T12:00:00Z"}', "invalid UTF-8"),
]


def _run(tmp_path: Path, content: bytes, **settings: int) -> list[dict[str, object]]:
    traffic = tmp_path / "t"
    traffic.mkdir(exist_ok=True)
    (traffic / "exchanges.jsonl").write_bytes(content)
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(traffic, store, settings=IngestSettings(**settings))
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


def test_fifty_megabyte_line_is_kept_with_its_long_string_cut(tmp_path: Path) -> None:
    huge = json.dumps({**GOOD, "exchange_id": "big", "pad": "x" * (50 * 1024 * 1024)}).encode()
    rows = _run(tmp_path, json.dumps(GOOD).encode() + b"\n" + huge + b"\n" + json.dumps(GOOD).encode() + b"\n")
    assert rows == []
    with Store.open(tmp_path / "s.duckdb") as store:
        (extra,) = store.query("SELECT extra_json FROM exchanges WHERE exchange_id = 'big'").column(0).to_pylist()
    extra = json.loads(extra)
    assert extra["pad"].endswith("[...cut at ingest: 52,428,800 bytes in all]")
    assert len(extra["pad"]) < 2 * 1024 * 1024
    assert "line too long" in extra["_ingest_notes"][0]


def test_line_too_long_even_with_strings_cut_is_quarantined(tmp_path: Path) -> None:
    many = json.dumps({**GOOD, "pad": list(range(3_000_000))}).encode()
    rows = _run(tmp_path, json.dumps(GOOD).encode() + b"\n" + many + b"\n" + json.dumps(GOOD).encode() + b"\n",
                max_line_bytes=1024 * 1024)
    assert [r["line"] for r in rows] == [2]
    assert "line too long" in str(rows[0]["reason"]) and "still over it" in str(rows[0]["reason"])


@pytest.mark.parametrize("request_", [
    {"messages": "hi"}, {"messages": [{"role": "bot", "content": "x"}]}, {"messages": [{"role": ["x"]}]},
    {"messages": [{"role": "user", "content": 5}]}, "verbatim text", [1, 2], {}, None,
    {"prompt": {"x": 1}}, {"input": 5}, {"system": 5, "messages": [5, {"role": "user", "content": [7]}]},
])
def test_odd_requests_are_kept_with_a_note(tmp_path: Path, request_: object) -> None:
    """A request is the client's input: nothing in it makes the exchange unusable."""
    row = {**GOOD, "request": request_, "response": {"status": 400, "error": {"code": "invalid_value"}}}
    assert _run(tmp_path, json.dumps(row).encode() + b"\n") == []
    with Store.open(tmp_path / "s.duckdb") as store:
        (kept,) = store.query("SELECT account_id, status, request_json FROM exchanges").to_pylist()
    assert kept["account_id"] == "a" and kept["status"] == 400
    assert json.loads(kept["request_json"]) == request_ or isinstance(request_, dict)


def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="not found"):
        ingest_traffic_dir(tmp_path / "nope", store)


def test_directory_without_exchanges(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="no exchanges"):
        ingest_traffic_dir(tmp_path, store)


@pytest.mark.parametrize("content", [b"", b"not parquet at all", b"PAR1" + b"\0" * 100 + b"PAR1"])
def test_unreadable_parquet_file_is_one_quarantine_entry(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "exchanges.parquet").write_bytes(content)
    (tmp_path / "t" / "exchanges.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n")
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(tmp_path / "t", store)
        rows = store.query("SELECT file, line, reason FROM quarantine").to_pylist()
        assert store.count("exchanges") == 1 and report.quarantined == 1
    assert rows[0]["file"].endswith("exchanges.parquet") and rows[0]["line"] == 0
    assert "cannot read Parquet" in rows[0]["reason"]


def test_accounts_and_events_go_through_the_same_validate_step(tmp_path: Path) -> None:
    """Bad account and event rows are quarantined under their kind; a later account row replaces an earlier one.

    An extra field nested deeper than orjson writes used to crash the whole ingest
    (only exchange rows caught unexpected errors); it is now one quarantined row.
    """
    traffic = tmp_path / "t"
    traffic.mkdir()
    (traffic / "exchanges.jsonl").write_text(json.dumps(GOOD) + "\n")
    deep = "[" * 300 + "]" * 300
    (traffic / "accounts.jsonl").write_text(
        '{"account_id": "a", "tier": "free"}\n{"account_id": 7}\n{"account_id": "b", "x": ' + deep + "}\n"
        '{"account_id": "a", "tier": "pro"}\n')
    (traffic / "events.jsonl").write_text('{"type": "release"}\n{"timestamp": "2026-02-01T00:00:00Z", "type": "r"}\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(traffic, store)
        accounts = store.query("SELECT account_id, tier FROM accounts").to_pylist()
        quarantine = store.query("SELECT kind, line, reason FROM quarantine ORDER BY kind, line").to_pylist()
    assert (report.accounts, report.events, report.quarantined) == (2, 1, 3)
    assert accounts == [{"account_id": "a", "tier": "pro"}]
    assert [(q["kind"], q["line"]) for q in quarantine] == [("accounts", 2), ("accounts", 3), ("events", 1)]
    assert "internal error" in quarantine[1]["reason"]


def test_integers_beyond_64_bits_are_kept_exactly(tmp_path: Path) -> None:
    """orjson stops at 64-bit integers; a huge number in a request or an extra field is data, not an error."""
    big = 2**70
    line = json.dumps({**GOOD, "trace": {"n": big}, "request": {**GOOD["request"], "seed": big}})  # type: ignore[dict-item]
    assert _run(tmp_path, line.encode() + b"\n") == []
    with Store.open(tmp_path / "s.duckdb") as store:
        row = store.query("SELECT request_json, extra_json FROM exchanges").to_pylist()[0]
    assert json.loads(row["request_json"])["seed"] == big
    assert json.loads(row["extra_json"])["trace"]["n"] == big
