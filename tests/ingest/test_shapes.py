"""Ingest of the three request shapes, compressions, shards and idempotence."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from distillguard.ingest import ingest_traffic_dir
from distillguard.store import Store


def _row(i: int, request: dict[str, Any]) -> dict[str, Any]:
    return {"exchange_id": f"ex-{i}", "timestamp": "2026-02-01T12:00:00.123Z", "account_id": f"acct-{i % 3}",
            "client": {"ip": "203.0.113.7", "asn": 64500}, "request": request,
            "response": {"status": 200, "content": "ok", "usage": {"input_tokens": 5, "output_tokens": 7}},
            "conversation_id": None, "custom_field": {"kept": True}}


CHAT = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hello chat"},
                                                                {"type": "image_url", "image_url": {"url": "u"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "n": 2}
RESPONSES = {"model": "m", "instructions": "Be brief.",
             "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello responses"}]}],
             "max_output_tokens": 99}
ANTHROPIC = {"model": "claude", "system": [{"type": "text", "text": "Be brief."}], "max_tokens": 64,
             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello anthropic"},
                                                       {"type": "image", "source": {"type": "base64"}}]}]}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


def _ingest(tmp_path: Path) -> pa.Table:
    with Store.open(tmp_path / "s.duckdb") as store:
        ingest_traffic_dir(tmp_path / "t", store)
        return store.read("exchanges")


def test_three_request_shapes_normalize_to_one(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    _write(tmp_path / "t" / "exchanges.jsonl", [_row(1, CHAT), _row(2, RESPONSES), _row(3, ANTHROPIC)])
    rows = {r["exchange_id"]: r for r in _ingest(tmp_path).to_pylist()}
    assert rows["ex-1"]["request_format"] == "chat"
    assert rows["ex-2"]["request_format"] == "responses"
    assert rows["ex-3"]["request_format"] == "anthropic"
    for i, text in ((1, "Hello chat"), (2, "Hello responses"), (3, "Hello anthropic")):
        r = rows[f"ex-{i}"]
        assert r["prompt_text"] == text
        assert r["system_text"] == "Be brief."
        assert json.loads(r["request_json"])["messages"][0]["role"] == "system"
    assert rows["ex-1"]["n_images"] == 1 and rows["ex-3"]["n_images"] == 1
    assert rows["ex-1"]["n_tools"] == 1 and rows["ex-1"]["n_choices"] == 2
    assert rows["ex-2"]["max_tokens"] == 99 and rows["ex-3"]["max_tokens"] == 64
    assert json.loads(rows["ex-1"]["extra_json"]) == {"custom_field": {"kept": True}}


@pytest.mark.parametrize("name", ["exchanges.jsonl", "exchanges.jsonl.gz", "exchanges.jsonl.zst"])
def test_compression_formats(tmp_path: Path, name: str) -> None:
    (tmp_path / "t").mkdir()
    _write(tmp_path / "t" / name, [_row(i, CHAT) for i in range(50)])
    table = _ingest(tmp_path)
    assert table.num_rows == 50
    assert sorted(table.column("source_line").to_pylist()) == list(range(1, 51))


def test_parquet_and_shard_folder(tmp_path: Path) -> None:
    shards = tmp_path / "t" / "exchanges"
    shards.mkdir(parents=True)
    _write(shards / "part-0.jsonl.zst", [_row(i, CHAT) for i in range(10)])
    rows = [_row(i, {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(10, 20)]
    for r in rows:
        r.pop("custom_field")
    pq.write_table(pa.Table.from_pylist(rows), shards / "part-1.parquet")
    table = _ingest(tmp_path)
    assert table.num_rows == 20
    parquet_rows = [r for r in table.to_pylist() if r["source_file"].endswith(".parquet")]
    assert {r["prompt_text"] for r in parquet_rows} == {f"q{i}" for i in range(10, 20)}


def test_reingest_is_idempotent(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    rows = [_row(i, CHAT) for i in range(30)]
    _write(tmp_path / "t" / "exchanges.jsonl", rows + rows[:5])  # duplicates inside the file too
    (tmp_path / "t" / "accounts.jsonl").write_text(
        '{"account_id": "acct-0", "tier": "free"}\n{"account_id": "acct-0", "tier": "paid"}\n')
    with Store.open(tmp_path / "s.duckdb") as store:
        first = ingest_traffic_dir(tmp_path / "t", store)
        second = ingest_traffic_dir(tmp_path / "t", store)
        assert (first.exchanges_added, first.duplicates) == (30, 5)
        assert (second.exchanges_added, second.duplicates) == (0, 35)
        assert store.count("exchanges") == 30
        assert store.read("accounts").to_pylist()[0]["tier"] == "paid"  # last row wins
        assert store.count("accounts") == 1


def test_missing_exchange_id_gets_a_stable_id(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    row = _row(1, CHAT)
    row.pop("exchange_id")
    _write(tmp_path / "t" / "exchanges.jsonl", [row])
    with Store.open(tmp_path / "s.duckdb") as store:
        ingest_traffic_dir(tmp_path / "t", store)
        ingest_traffic_dir(tmp_path / "t", store)
        ids = store.read("exchanges").column("exchange_id").to_pylist()
    assert len(ids) == 1 and ids[0].startswith("sha1-")
