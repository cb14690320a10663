"""The columnar Parquet path gives exactly what ``exchange_row`` gives, row for row.

Every test ingests the same Parquet file twice: through the columnar decoder (the
default) and with it switched off (``columnar=False``: every row through
``exchange_row``), and compares the stored exchanges and quarantine.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.ingest import ingest_traffic_dir
from distillguard.ingest.columnar import flatten_sql
from distillguard.sim.writer import PARQUET_EXCHANGES
from distillguard.store import Store

_PART = pa.struct([("type", pa.string()), ("text", pa.string()), ("image_url", pa.struct([("url", pa.string())]))])
SCHEMA = pa.schema([
    ("exchange_id", pa.string()), ("timestamp", pa.string()), ("account_id", pa.string()),
    ("api_key_id", pa.string()),
    ("client", pa.struct([("ip", pa.string()), ("asn", pa.int64()), ("country", pa.string()),
                          ("user_agent", pa.string()), ("tls_fingerprint", pa.string()), ("port", pa.int32())])),
    ("request", pa.struct([
        ("model", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.list_(_PART))]))),
        ("tools", pa.list_(pa.struct([("type", pa.string()), ("name", pa.string())]))),
        ("functions", pa.list_(pa.struct([("name", pa.string())]))),
        ("max_tokens", pa.int64()), ("max_completion_tokens", pa.int64()), ("temperature", pa.float64()),
        ("top_p", pa.float64()), ("n", pa.int64()), ("stream", pa.bool_()),
    ])),
    ("response", pa.struct([
        ("status", pa.int64()), ("finish_reason", pa.string()), ("content", pa.string()),
        ("reasoning_content", pa.string()), ("tool_calls", pa.list_(pa.struct([("id", pa.string())]))),
        ("usage", pa.struct([(k, pa.int64()) for k in ("input_tokens", "prompt_tokens", "output_tokens",
                                                         "completion_tokens", "reasoning_tokens")])),
        ("latency_ms", pa.float64()),
    ])),
    ("conversation_id", pa.string()),
])


def _text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def _base(i: int) -> dict[str, Any]:
    return {
        "exchange_id": f"ex-{i}", "timestamp": "2026-02-01T12:00:00.123Z", "account_id": f"acct-{i % 7}",
        "api_key_id": "k1", "client": {"ip": "203.0.113.7", "asn": 64500, "country": "DE", "user_agent": "ua",
                                       "tls_fingerprint": "t13", "port": 443},
        "request": {"model": "m", "messages": [
            {"role": "system", "content": [_text("Be brief.")]},
            {"role": "user", "content": [_text("first"), {"type": "image_url", "image_url": {"url": "u"}}]},
            {"role": "assistant", "content": [_text("ok")]},
            {"role": "user", "content": [_text("Hello "), _text("there")]}],
            "tools": [], "functions": None, "max_tokens": 256, "max_completion_tokens": None,
            "temperature": 0.7, "top_p": 0.9, "n": 1, "stream": False},
        "response": {"status": 200, "finish_reason": "stop", "content": "hi", "reasoning_content": None,
                     "tool_calls": [{"id": "c1"}], "usage": {"input_tokens": 5, "prompt_tokens": None,
                                                            "output_tokens": 7, "completion_tokens": 9,
                                                            "reasoning_tokens": 0},
                     "latency_ms": 12.5},
        "conversation_id": None,
    }


def _set(row: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = row
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


# (path, value): each makes a row the Python path flattens differently, quarantines, or reads specially.
MUTATIONS: list[tuple[str, Any]] = [
    ("exchange_id", None), ("exchange_id", ""), ("account_id", None), ("account_id", "   "),
    ("account_id", "\u00a0"), ("account_id", "é"), ("timestamp", None), ("timestamp", "2026-02-01T12:00:00"),
    ("timestamp", "2026-02-01 12:00:00+00"), ("timestamp", "2026-02-01T12:00:00+0100"),
    ("timestamp", "2026-02-01T12:00:00.1234567Z"), ("timestamp", "2026-02-30T12:00:00Z"),
    ("timestamp", "2026-02-01T24:00:00Z"), ("timestamp", "2026-02-01T12:00:60Z"), ("timestamp", "0999-01-01T00:00:00Z"),
    ("timestamp", "20260201T120000Z"), ("timestamp", "2026-02-01T12:00Z"), ("timestamp", "yesterday"),
    ("timestamp", "2026-02-01T12:00:00-00:30"),
    ("request", None), ("request.messages", None), ("request.messages", []),
    ("request.messages.0", None), ("request.messages.0.role", None), ("request.messages.0.role", "robot"),
    ("request.messages.0.role", "developer"), ("request.messages.3.role", "tool"),
    ("request.messages.3.content", None), ("request.messages.3.content", []),
    ("request.messages.3.content.0", None), ("request.messages.3.content.0.text", None),
    ("request.messages.3.content.0.type", None), ("request.messages.3.content.0.type", "image"),
    ("request.messages.3.content.0.type", "tool_use"), ("request.messages.3.content.0.type", "input_image"),
    ("request.messages.3.content.0.type", "refusal"),
    ("request.tools", None), ("request.tools", [{"type": "function", "name": "f"}, None]),
    ("request.functions", [{"name": "g"}]), ("request.max_tokens", 0), ("request.max_tokens", None),
    ("request.max_completion_tokens", 99), ("request.max_tokens", -(2**63)), ("request.max_tokens", 2**63 - 1),
    ("request.temperature", math.nan), ("request.temperature", math.inf), ("request.temperature", None),
    ("request.top_p", math.nan), ("request.n", 2**31), ("request.n", -(2**31)), ("request.n", 2**31 - 1),
    ("request.n", None), ("request.stream", None), ("request.model", None),
    ("client", None), ("client.asn", -(2**63)), ("client.ip", None),
    ("response", None), ("response.status", 2**40), ("response.status", None), ("response.tool_calls", None),
    ("response.tool_calls", []), ("response.usage", None), ("response.usage.input_tokens", 0),
    ("response.usage.prompt_tokens", 11), ("response.usage.output_tokens", None),
    ("response.latency_ms", math.nan), ("response.content", None), ("conversation_id", "c-1"),
    # Far times and negative counts: quarantined (tokens) or not read (request counts) by both paths alike.
    ("timestamp", "9999-01-01T00:00:00Z"), ("timestamp", "2262-04-11T23:47:16Z"),
    ("timestamp", "2262-04-11T23:47:17Z"), ("timestamp", "1677-09-21T00:12:44Z"),
    ("timestamp", "1677-09-21T00:12:43Z"), ("timestamp", "2262-04-12T01:00:00+02:00"),
    ("request.max_tokens", -5), ("request.max_completion_tokens", -1), ("request.n", -1), ("request.n", 0),
    ("response.usage.input_tokens", -3), ("response.usage.prompt_tokens", -3),
    ("response.usage.completion_tokens", -1), ("response.usage.reasoning_tokens", -2),
]


def _rows(n_random: int, seed: int) -> list[dict[str, Any]]:
    rows = [_base(0)]
    for i, (path, value) in enumerate(MUTATIONS, start=1):
        row = _base(i)
        _set(row, path, value)
        rows.append(row)
    rng = random.Random(seed)
    for i in range(len(rows), len(rows) + n_random):  # several mutations at once
        row = _base(i)
        for path, value in rng.sample(MUTATIONS, rng.randint(1, 4)):
            with contextlib.suppress(TypeError, KeyError, IndexError):  # a parent was nulled or emptied
                _set(row, path, copy.deepcopy(value))
        rows.append(row)
    rows.append(_base(3))  # a duplicate id: the first wins in both paths
    return rows


def _ingest(traffic: Path, db: Path, *, columnar: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with Store.open(db) as store:
        ingest_traffic_dir(traffic, store, columnar=columnar)
        # The stored order is the parallel insert's (it differs between two ingests of one file): sort by file and
        # line, since a line number alone repeats across the shards of a larger traffic directory.
        exchanges = sorted(store.read("exchanges").to_pylist(), key=lambda r: (r["source_file"], r["source_line"]))
        quarantine = sorted(store.read("quarantine").to_pylist(), key=lambda r: (r["file"], r["line"]))
    for r in exchanges:
        r["request_json"] = json.loads(r["request_json"])
    return exchanges, quarantine


def _both(tmp_path: Path, table: pa.Table, caplog: pytest.LogCaptureFixture, columnar: bool = True) -> tuple[Any, Any]:
    """(ingested with the columnar decoder, ingested row by row); ``columnar``: the first must not fall back."""
    traffic = tmp_path / "t"
    traffic.mkdir()
    pq.write_table(table, traffic / "exchanges.parquet", row_group_size=64)
    first = _ingest_columnar(traffic, tmp_path / "a.duckdb", caplog) if columnar else \
        _ingest(traffic, tmp_path / "a.duckdb")
    return first, _ingest(traffic, tmp_path / "b.duckdb", columnar=False)


def _ingest_columnar(traffic: Path, db: Path, caplog: pytest.LogCaptureFixture) -> Any:
    """``_ingest`` where every Parquet file must take the columnar decoder (the reader logs each that does not)."""
    with caplog.at_level(logging.DEBUG, logger="distillguard.ingest"):
        caplog.clear()
        result = _ingest(traffic, db)
    fell_back = [r.getMessage() for r in caplog.records if "record by record" in r.getMessage()]
    assert not fell_back, "the columnar decoder fell back to the row path"
    return result


def test_every_flattened_row_equals_exchange_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = pa.Table.from_pylist(_rows(600, seed=1), schema=SCHEMA)
    flatten = flatten_sql(SCHEMA)
    assert flatten is not None
    columnar, rows = _both(tmp_path, table, caplog)
    assert columnar == rows
    exchanges, quarantine = rows
    assert len(quarantine) > 100 and len(exchanges) > 300  # both outcomes are well covered


def test_the_simulators_traffic_is_flattened_in_duckdb_identically(
    demo_traffic: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    flatten = flatten_sql(PARQUET_EXCHANGES)
    assert flatten is not None
    files = [str(p) for p in sorted((demo_traffic / "exchanges").glob("*.parquet"))]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ok, total = con.execute(
        f"SELECT count(*) FILTER ({flatten.ok}), count(*) FROM read_parquet(?, file_row_number = true) t", [files]
    ).fetchone()  # type: ignore[misc]
    assert total > 10_000 and ok / total > 0.99
    columnar = _ingest_columnar(demo_traffic, tmp_path / "a.duckdb", caplog)
    assert columnar == _ingest(demo_traffic, tmp_path / "b.duckdb", columnar=False)


@pytest.mark.parametrize("change", [
    lambda s: s.append(pa.field("custom", pa.string())),  # unknown top-level column: extra_json
    lambda s: s.set(s.get_field_index("request"), pa.field("request", pa.struct(
        [*s.field("request").type, pa.field("system", pa.string())]))),  # Anthropic-shaped
    lambda s: s.set(s.get_field_index("response"), pa.field("response", pa.struct(
        [*s.field("response").type, pa.field("cost", pa.float64())]))),  # response extra
    lambda s: s.set(s.get_field_index("timestamp"), pa.field("timestamp", pa.timestamp("us", "UTC"))),
])
def test_other_layouts_take_the_row_path_and_match(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: Any,
) -> None:
    schema = change(SCHEMA)
    assert flatten_sql(schema) is None
    rows = [_base(i) for i in range(5)]
    if pa.types.is_timestamp(schema.field("timestamp").type):
        for r in rows:
            r["timestamp"] = None
    table = pa.Table.from_pylist(rows, schema=schema)
    columnar, plain = _both(tmp_path, table, caplog, columnar=False)
    assert columnar == plain
