"""Every record the gateway writes is read by ``scan``: each endpoint and shape, served or refused.

Records are written in the gateway's shape (``gateway/app.py``, ``gateway/exchange.py``),
with the values clients really send (``"stream": "true"``, numbers as strings, a
17 MB ``User-Agent`` from before the gateway capped headers, a body 1,024 levels
deep), into a log directory laid out as the gateway lays it out. Each must end up in
``exchanges`` and count in its account's ``n_exchanges``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from distillguard.pipeline import prepare
from distillguard.store import Store

UA_17MB = "Mozilla/5.0 " + "A" * (17 * 1024 * 1024)
ANSWER = {"status": 200, "finish_reason": "stop", "content": "four", "reasoning_content": None, "tool_calls": [],
          "usage": {"input_tokens": 5, "output_tokens": 3, "reasoning_tokens": 0}, "latency_ms": 12.5}


def _refused(status: int, code: str) -> dict[str, Any]:
    return {"status": status, "finish_reason": "rejected", "content": None, "latency_ms": 0.4,
            "error": {"type": "invalid_request_error", "code": code, "message": "..."}}


DEEP = "@deep@"  # written as 1,023 nested lists: orjson reads 1,024 levels (the gateway accepts such a body)


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record).replace(orjson.dumps(DEEP), b"[" * 1023 + b"]" * 1023) + b"\n"


MSG = [{"role": "user", "content": "What is 2 + 2?"}]
# name: (endpoint, request, response, expected request_format, expected prompt_text)
CASES: dict[str, tuple[str, Any, dict[str, Any], str | None, str]] = {
    "chat": ("/v1/chat/completions", {"model": "m", "messages": MSG, "max_tokens": 16}, ANSWER, "chat",
             "What is 2 + 2?"),
    "chat-odd-values": ("/v1/chat/completions", {"model": 5, "messages": MSG, "stream": "true",
                                                 "max_tokens": "10", "n": "2", "temperature": "0.5"},
                        ANSWER, "chat", "What is 2 + 2?"),
    "chat-stream": ("/v1/chat/completions", {"model": "m", "messages": MSG, "stream": True,
                                             "stream_options": {"include_usage": True}},
                    {**ANSWER, "interrupted": False}, "chat", "What is 2 + 2?"),
    "chat-unknown-role": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "bot", "content": "x"},
                                                                             *MSG]}, ANSWER, "chat",
                          "What is 2 + 2?"),
    "completions-string": ("/v1/completions", {"model": "m", "prompt": "Once upon a time", "max_tokens": 8},
                           ANSWER, "completions", "Once upon a time"),
    "completions-list": ("/v1/completions", {"model": "m", "prompt": ["first", "second"]}, ANSWER,
                         "completions", "second"),
    "completions-tokens": ("/v1/completions", {"model": "m", "prompt": [101, 2023, 102]}, ANSWER, "completions",
                           ""),
    "responses-string": ("/v1/responses", {"model": "m", "input": "Hi there", "instructions": "Be brief.",
                                           "max_output_tokens": 32}, ANSWER, "responses", "Hi there"),
    "responses-items": ("/v1/responses", {"model": "m", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Item text"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "42"}]}, ANSWER, "responses", "Item text"),
    "anthropic": ("/v1/messages", {"model": "claude", "system": "Be brief.", "max_tokens": 64, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello anthropic"},
                                     {"type": "image", "source": {"type": "base64", "data": "..."}}]}]},
                  ANSWER, "anthropic", "Hello anthropic"),
    "refused-messages-not-list": ("/v1/chat/completions", {"model": "m", "messages": "hi"},
                                  _refused(400, "invalid_value"), None, ""),
    "refused-bad-json": ("/v1/chat/completions", {}, _refused(400, "invalid_json"), None, ""),
    "refused-prompt-number": ("/v1/completions", {"model": "m", "prompt": 5}, _refused(400, "invalid_value"),
                              "completions", ""),
    "refused-input-object": ("/v1/responses", {"model": "m", "input": {"x": 1}}, _refused(400, "invalid_value"),
                             "responses", ""),
    "refused-negative-max-tokens": ("/v1/chat/completions", {"model": "m", "messages": MSG,
                                                             "max_tokens": -1_000_000},
                                    _refused(400, "invalid_value"), "chat", "What is 2 + 2?"),
    "refused-too-large": ("/v1/chat/completions", {}, _refused(413, "request_too_large"), None, ""),
    "refused-rate-limit": ("/v1/completions", {"model": "m", "prompt": "x"}, _refused(429, "rate_limit_exceeded"),
                           "completions", "x"),
    "refused-upstream": ("/v1/chat/completions", {"model": "m", "messages": MSG},
                         {**_refused(502, "upstream_error"), "finish_reason": "error"}, "chat", "What is 2 + 2?"),
    "deep-body": ("/v1/chat/completions", {"model": "m", "messages": MSG, "metadata": DEEP}, ANSWER, "chat",
                  "What is 2 + 2?"),
    "huge-user-agent": ("/v1/chat/completions", {"model": "m", "messages": MSG}, ANSWER, "chat", "What is 2 + 2?"),
}


def _record(i: int, name: str) -> dict[str, Any]:
    endpoint, request, response, _, _ = CASES[name]
    user_agent = UA_17MB if name == "huge-user-agent" else "OpenAI/Python 1.40.0"
    record: dict[str, Any] = {
        "exchange_id": f"gx-{i:032x}", "timestamp": f"2026-02-01T12:{i % 60:02d}:00.123456+00:00",
        "account_id": f"acct-{name}", "api_key_id": f"key-{name}",
        "client": {"ip": "203.0.113.7", "user_agent": user_agent, "tls_fingerprint": None},
        "endpoint": endpoint, "request": request, "response": response,
        "gateway": {"action": "allow", "policy_subject": None, "cluster_id": None, "transforms": []},
    }
    if name == "refused-too-large":
        record["truncated"] = [{"field": "client.user_agent", "length": 9000}]
        record["client"]["user_agent"] = "x" * 4096 + "…"
    return record


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A gateway log with two records of every case plus two unauthenticated ones, ingested and featurized."""
    log_dir = tmp_path_factory.mktemp("gateway-log")
    (log_dir / "exchanges").mkdir()
    records = [_record(i, name) for i, name in enumerate([*CASES, *CASES])]
    for i in range(2):  # 401: no key, logged under the placeholder account
        records.append({**_record(1000 + i, "refused-bad-json"), "account_id": "unauthenticated",
                        "api_key_id": None, "response": _refused(401, "missing_api_key")})
    half = len(records) // 2
    for n, part in enumerate((records[:half], records[half:])):
        seg = log_dir / "exchanges" / f"seg-20260201T120000Z-4242-{n}.jsonl"
        seg.write_bytes(b"".join(_line(r) for r in part))
    with Store.open(tmp_path_factory.mktemp("store") / "s.duckdb") as store:
        prepared = prepare(log_dir, store, link=False)
        exchanges = {r["exchange_id"]: r for r in store.read("exchanges").to_pylist()}
        quarantine = store.read("quarantine").to_pylist()
    features = {r["account_id"]: r for r in prepared.features.to_pylist()}
    return {"records": records, "exchanges": exchanges, "quarantine": quarantine, "features": features,
            "report": prepared.report}


def test_every_record_is_an_exchange(scanned: dict[str, Any]) -> None:
    assert scanned["quarantine"] == []
    assert set(scanned["exchanges"]) == {r["exchange_id"] for r in scanned["records"]}
    assert scanned["report"].exchanges_read == len(scanned["records"]) and scanned["report"].quarantined == 0


def test_every_account_counts_all_its_records(scanned: dict[str, Any]) -> None:
    expected: dict[str, int] = {}
    for r in scanned["records"]:
        expected[r["account_id"]] = expected.get(r["account_id"], 0) + 1
    assert {a: f["n_exchanges"] for a, f in scanned["features"].items()} == expected


@pytest.mark.parametrize("name", list(CASES))
def test_each_shape_is_read(scanned: dict[str, Any], name: str) -> None:
    _, _, response, fmt, prompt = CASES[name]
    (row,) = [r for r in scanned["exchanges"].values() if r["account_id"] == f"acct-{name}"][:1]
    assert row["request_format"] == fmt
    assert row["prompt_text"] == prompt
    assert row["status"] == response["status"]
    extra = json.loads(row["extra_json"])
    assert extra["endpoint"] == CASES[name][0]


def test_odd_values_are_read_as_the_upstream_reads_them_and_noted(scanned: dict[str, Any]) -> None:
    row = next(r for r in scanned["exchanges"].values() if r["account_id"] == "acct-chat-odd-values")
    assert (row["stream"], row["max_tokens"], row["n_choices"], row["temperature"], row["model"]) == \
        (True, 10, 2, 0.5, None)
    notes = json.loads(row["extra_json"])["_ingest_notes"]
    assert any("'request.stream' is the string 'true'" in n for n in notes)
    assert any("'request.model' must be a string" in n for n in notes)
    assert json.loads(row["request_json"])["model"] == 5  # the value as sent is kept


def test_negative_max_tokens_is_not_data(scanned: dict[str, Any]) -> None:
    row = next(r for r in scanned["exchanges"].values() if r["account_id"] == "acct-refused-negative-max-tokens")
    assert row["max_tokens"] is None
    assert any("out of range" in n for n in json.loads(row["extra_json"])["_ingest_notes"])


def test_the_17_mb_user_agent_is_cut_with_a_mark(scanned: dict[str, Any]) -> None:
    row = next(r for r in scanned["exchanges"].values() if r["account_id"] == "acct-huge-user-agent")
    assert row["user_agent"].startswith("Mozilla/5.0 AAAA")
    assert row["user_agent"].endswith(f"[...cut at ingest: {len(UA_17MB):,} bytes in all]")
    assert len(row["user_agent"]) < 2 * 1024 * 1024
    assert "line too long" in json.loads(row["extra_json"])["_ingest_notes"][0]


def test_a_body_nested_as_deep_as_the_gateway_accepts_is_read(scanned: dict[str, Any]) -> None:
    row = next(r for r in scanned["exchanges"].values() if r["account_id"] == "acct-deep-body")
    assert "nested deeper than 200 levels" in json.loads(row["extra_json"])["_ingest_notes"][0]
    assert "[nested too deep: cut at ingest]" in row["request_json"]


def test_a_log_directory_scans_from_the_cli_path(tmp_path: Path, scanned: dict[str, Any]) -> None:
    """The unauthenticated placeholder account is an account like any other in the features."""
    assert scanned["features"]["unauthenticated"]["n_exchanges"] == 2
