"""Property-based ingest: generated traffic directories of good and malformed rows and files.

Each example is a folder of shards (JSONL plain, ``.gz``, ``.zst``; Parquet read
by DuckDB's columnar path or row by row; truncated, zero-byte and garbage
Parquet) whose rows are good or bad by construction. Invariants: ingest never
raises; every bad row is quarantined once at its ``file:line`` (``file`` and
line 0 for a whole unreadable file); every good row is in ``exchanges`` at its
own location; rows in = exchanges + quarantined. ``CASES`` counts what ran, for
``benchmarks/results/hardening_ingest.md``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from distillguard.config import IngestSettings
from distillguard.ingest import ingest_traffic_dir
from distillguard.store import Store

MAX_LINE = 64 * 1024
CASES: Counter[str] = Counter()
FUZZ = settings(derandomize=True, max_examples=100, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],  # shrinking re-ingests for minutes: the failing case is shown
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])

# -- values -------------------------------------------------------------------------------------
leaf = st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_value = st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                          max_leaves=12)
odd = json_value | st.sampled_from(["true", "false", "10", "-1", "0.5", "abc", "", " 7 "])
role = st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot", ""]) | json_value
content = st.text(max_size=20) | st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_image", "image", "tool_use", "tool_result", "thinking"])},
    optional={"text": odd, "content": odd, "source": odd, "name": odd}), max_size=3) | json_value
message = st.fixed_dictionaries({}, optional={"role": role, "content": content}) | json_value
settings_keys = st.fixed_dictionaries({}, optional={
    "model": odd, "stream": odd, "max_tokens": odd, "max_completion_tokens": odd, "max_output_tokens": odd,
    "n": odd, "temperature": odd, "tools": odd, "functions": odd, "extra": json_value})
request = st.one_of(
    json_value,
    st.builds(lambda s, m: {**s, "messages": m}, settings_keys, st.lists(message, max_size=4) | json_value),
    st.builds(lambda s, m, sy: {**s, "messages": m, "system": sy}, settings_keys, st.lists(message, max_size=3),
              odd),
    st.builds(lambda s, p: {**s, "prompt": p}, settings_keys,
              st.text(max_size=20) | st.lists(st.text(max_size=8) | st.integers(0, 50_000), max_size=3) | odd),
    st.builds(lambda s, i, ins: {**s, "input": i, "instructions": ins}, settings_keys,
              st.text(max_size=20) | st.lists(message | st.fixed_dictionaries(
                  {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"])},
                  optional={"role": role, "content": content, "output": odd, "name": odd}), max_size=3) | odd,
              odd),
)
count = st.integers(0, 2**63 - 1) | st.none()
timestamp = st.builds(
    lambda d, off: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + off,
    st.datetimes(min_value=__import__("datetime").datetime(1678, 1, 1),
                 max_value=__import__("datetime").datetime(2261, 12, 31)),
    st.sampled_from(["Z", "+00:00", "+05:30", "-08:00", "+23:59"]),
)
account = st.text(min_size=1, max_size=12).filter(lambda s: bool(s.strip()))
good_record = st.fixed_dictionaries(
    {"timestamp": timestamp, "account_id": account, "request": request},
    optional={
        "api_key_id": st.text(max_size=8) | st.none(), "conversation_id": st.text(max_size=8) | st.none(),
        "client": st.fixed_dictionaries({}, optional={"ip": st.text(max_size=15) | st.none(),
                                                      "asn": st.integers(-(2**63) + 1, 2**63 - 1) | st.none(),
                                                      "user_agent": st.text(max_size=30) | st.none()}),
        "response": st.none() | st.fixed_dictionaries({}, optional={
            "status": st.integers(0, 599), "finish_reason": st.text(max_size=8) | st.none(),
            "content": st.none() | st.text(max_size=10) | st.lists(json_value, max_size=3),
            "tool_calls": json_value, "latency_ms": st.floats(0, 1e6),
            "usage": st.fixed_dictionaries({}, optional={k: count for k in (
                "input_tokens", "output_tokens", "prompt_tokens", "completion_tokens", "reasoning_tokens")}),
            "error": json_value}),
        "endpoint": st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"]),
        "gateway": json_value, "custom": json_value,
    })

# -- bad records (each made bad by one change) ------------------------------------------------------
BAD_FIELDS: list[tuple[str, Any]] = [
    ("account_id", st.none() | st.integers() | st.just("") | st.just("  ") | st.lists(st.text(), max_size=2)),
    ("timestamp", st.none() | st.integers() | st.sampled_from(
        ["yesterday", "2026-02-01T12:00:00", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59Z", "2300-01-01T00:00:00Z",
         "2262-04-12T00:00:00Z", "0001-01-01T00:00:00Z", "1677-09-21T00:00:00Z", "0001-01-01T00:00:00+01:00"])),
    ("timestamp", st.builds(lambda y: f"{y:04d}-06-01T00:00:00Z", st.integers(1, 1676) | st.integers(2263, 9999))),
    ("exchange_id", st.integers() | st.lists(st.text(), max_size=1) | st.booleans()),
    ("client", st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=2)),
    ("client", st.fixed_dictionaries({"asn": st.text(max_size=3) | st.floats(0.5, 0.9)})),
    ("response", st.integers() | st.text(max_size=3)),
    ("response", st.fixed_dictionaries({"status": st.text(max_size=3) | st.integers(2**31, 2**40)})),
    ("response", st.fixed_dictionaries({"usage": st.fixed_dictionaries({"input_tokens": st.integers(-(2**62), -1)})})),
    ("response", st.fixed_dictionaries({"usage": st.fixed_dictionaries(
        {"input_tokens": st.integers(1, 9), "completion_tokens": st.integers(-(2**62), -1)})})),
    ("response", st.fixed_dictionaries({"usage": st.fixed_dictionaries({"output_tokens": st.text(max_size=3)})})),
    ("response", st.fixed_dictionaries({"latency_ms": st.text(max_size=3)})),
]


@dataclass
class Shard:
    """One file: its bytes and the expected outcome of each of its rows (line -> good)."""

    name: str
    data: bytes
    rows: dict[int, bool] = field(default_factory=dict)
    cases: Counter[str] = field(default_factory=Counter)  # counted into CASES when the example runs


def _line(record: Any, style: str) -> bytes:
    if style == "orjson":
        try:
            return orjson.dumps(record)
        except TypeError:  # an integer beyond 64 bits: valid JSON all the same
            pass
    return json.dumps(record, ensure_ascii=True).encode()


@st.composite
def jsonl_row(draw: st.DrawFn, n: int) -> tuple[bytes, bool, str]:
    """(line bytes without newline, good?, case name)."""
    record = {"exchange_id": f"fz-{n}", **draw(good_record)}
    kind = draw(st.sampled_from(["good", "good", "good", "bad-field", "bad-field", "not-object", "cut-json",
                                 "bad-utf8", "deep-300", "deep-1100", "surrogate", "huge-string", "huge-array"]))
    if kind == "bad-field":
        name, values = draw(st.sampled_from(BAD_FIELDS))
        record[name] = draw(values)
        if record[name] is None and name == "exchange_id":
            record[name] = 1
        kind = f"bad-{name}"
    if kind == "not-object":
        return _line(draw(json_value.filter(lambda v: not isinstance(v, dict))), "orjson"), False, kind
    if kind in ("deep-300", "deep-1100"):
        levels = 300 if kind == "deep-300" else 1100
        line = _line({**record, "request": {"messages": [], "meta": "@deep@"}}, "orjson")
        return line.replace(b'"@deep@"', b"[" * levels + b"]" * levels), True, kind
    if kind == "surrogate":
        return _line({**record, "request": {"messages": [{"role": "user", "content": "a\ud800b"}]}}, "ascii"), \
            True, kind
    if kind == "huge-string":
        size = draw(st.integers(MAX_LINE, 3 * MAX_LINE))
        where = draw(st.sampled_from(["client", "request", "custom"]))
        big = "U" * size
        if where == "client":
            record["client"] = {"user_agent": big}
        elif where == "request":
            record["request"] = {"messages": [{"role": "user", "content": big}]}
        else:
            record["custom"] = big
        return _line(record, "orjson"), True, f"{kind}-{where}"
    if kind == "huge-array":
        record["request"] = {"messages": [], "pad": list(range(MAX_LINE // 4))}
        return _line(record, "orjson"), False, kind
    line = _line(record, draw(st.sampled_from(["orjson", "ascii"])))
    if len(line) > MAX_LINE // 2:  # generic rows stay well under the limit, so their outcome is known
        record["request"], record.pop("custom", None), record.pop("gateway", None)
        line = _line({**record, "request": {}}, "orjson")
    if kind == "cut-json":
        return line[:draw(st.integers(1, len(line) - 1))], False, kind
    if kind == "bad-utf8":
        at = draw(st.integers(0, len(line)))
        return line[:at] + b"\xff" + line[at:], False, kind
    return line, not kind.startswith("bad"), kind


@st.composite
def jsonl_shard(draw: st.DrawFn, index: int, first: int) -> Shard:
    ext = draw(st.sampled_from(["jsonl", "jsonl", "jsonl.gz", "jsonl.zst"]))
    shard = Shard(f"part-{index:02d}.{ext}", b"")
    lines: list[bytes] = []
    for i in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(b"   ")  # blank lines are no rows
        line, good, case = draw(jsonl_row(first + i))
        shard.cases[f"jsonl {case}"] += 1
        lines.append(line)
        shard.rows[len(lines)] = good
    data = b"\n".join(lines) + (b"\n" if lines and draw(st.booleans()) else b"")
    if lines and not data.endswith(b"\n") and shard.rows[len(lines)] is not False:
        data += b"\n"  # a complete last line without its newline is tested in test_quarantine
    shard.data = gzip.compress(data) if ext.endswith(".gz") else \
        zstandard.ZstdCompressor().compress(data) if ext.endswith(".zst") else data
    return shard


PART = pa.struct([("role", pa.string()), ("content", pa.string())])
PARQUET = pa.schema([
    ("exchange_id", pa.string()), ("timestamp", pa.string()), ("account_id", pa.string()),
    ("client", pa.struct([("ip", pa.string()), ("user_agent", pa.string())])),
    ("request", pa.struct([("model", pa.string()), ("messages", pa.list_(PART)), ("max_tokens", pa.int64()),
                           ("n", pa.int64()), ("temperature", pa.float64()), ("stream", pa.bool_())])),
    ("response", pa.struct([("status", pa.int64()), ("content", pa.string()),
                            ("usage", pa.struct([("input_tokens", pa.int64()), ("output_tokens", pa.int64())]))])),
])
parquet_request = st.fixed_dictionaries({
    "model": st.text(max_size=5) | st.none(),
    "messages": st.none() | st.lists(st.none() | st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "bot"]) | st.none(),
         "content": st.text(max_size=10) | st.none()}), max_size=3),
    "max_tokens": st.integers(-(2**63) + 1, 2**63 - 1) | st.none(), "n": st.integers(-(2**63) + 1, 2**63 - 1),
    "temperature": st.floats(allow_nan=False, allow_infinity=False) | st.none(), "stream": st.booleans() | st.none(),
}) | st.none()


@st.composite
def parquet_row(draw: st.DrawFn, n: int) -> tuple[dict[str, Any], bool, str]:
    usage = {"input_tokens": draw(st.integers(0, 2**40) | st.none()), "output_tokens": draw(st.integers(0, 2**40))}
    row = {"exchange_id": f"fz-{n}", "timestamp": draw(timestamp), "account_id": draw(account),
           "client": draw(st.none() | st.fixed_dictionaries({"ip": st.text(max_size=5), "user_agent": st.text()})),
           "request": draw(parquet_request),
           "response": {"status": draw(st.integers(0, 599)), "content": draw(st.text(max_size=10)), "usage": usage}}
    kind = draw(st.sampled_from(["good", "good", "good", "timestamp", "account", "tokens"]))
    if kind == "timestamp":
        row["timestamp"] = draw(st.none() | st.sampled_from(["9999-01-01T00:00:00Z", "2300-01-01T00:00:00Z",
                                                             "0001-01-01T00:00:00Z", "soon"]))
    elif kind == "account":
        row["account_id"] = draw(st.none() | st.just("") | st.just(" "))
    elif kind == "tokens":
        usage[draw(st.sampled_from(["input_tokens", "output_tokens"]))] = draw(st.integers(-(2**62), -1))
    return row, kind == "good", kind


PARQUET_KINDS = ["columnar", "columnar", "row-path", "truncated", "zero-bytes", "garbage"]


@st.composite
def parquet_shard(draw: st.DrawFn, index: int, first: int, kinds: list[str] = PARQUET_KINDS) -> Shard:
    kind = draw(st.sampled_from(kinds))
    shard = Shard(f"part-{index:02d}.parquet", b"")
    if kind == "zero-bytes":
        shard.rows[0] = False
    elif kind == "garbage":
        shard.data = draw(st.binary(min_size=1, max_size=64))
        shard.rows[0] = False
    else:
        rows = [draw(parquet_row(first + i)) for i in range(draw(st.integers(1 if kind == "truncated" else 0, 10)))]
        table = pa.Table.from_pylist([r for r, _, _ in rows], schema=PARQUET)
        if kind == "row-path":  # an unknown column: every row through exchange_row
            table = table.append_column("custom", pa.array([f"x{i}" for i in range(len(rows))], pa.string()))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=4)
        shard.data = buffer.getvalue()
        if kind == "truncated":
            shard.data = shard.data[:draw(st.integers(0, len(shard.data) - 1))]
            shard.rows[0] = False
        else:
            for i, (_, good, case) in enumerate(rows, start=1):
                shard.rows[i] = good
                shard.cases[f"parquet {kind} {case}"] += 1
    shard.cases[f"parquet file {kind}"] += 1
    return shard


@st.composite
def traffic(draw: st.DrawFn) -> list[Shard]:
    shards = []
    for index in range(draw(st.integers(1, 4))):
        make = draw(st.sampled_from([jsonl_shard, jsonl_shard, parquet_shard]))
        shards.append(draw(make(index, 1000 * index)))
    return shards


def _check(shards: list[Shard]) -> tuple[int, int]:
    """Ingest ``shards``; assert the invariants; return (rows in, rows quarantined)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "t" / "exchanges"
        folder.mkdir(parents=True)
        for shard in shards:
            (folder / shard.name).write_bytes(shard.data)
        with Store.open(Path(tmp) / "s.duckdb") as store:
            report = ingest_traffic_dir(Path(tmp) / "t", store, settings=IngestSettings(max_line_bytes=MAX_LINE))
            kept = store.query("SELECT source_file, source_line FROM exchanges").to_pylist()
            quarantined = store.query("SELECT file, line, reason, kind FROM quarantine").to_pylist()
        prefix = str(folder) + "/"
        got_good = Counter((r["source_file"].removeprefix(prefix), r["source_line"]) for r in kept)
        got_bad = Counter((r["file"].removeprefix(prefix), r["line"]) for r in quarantined)
        want_good = Counter((s.name, n) for s in shards for n, good in s.rows.items() if good)
        want_bad = Counter((s.name, n) for s in shards for n, good in s.rows.items() if not good)
        assert got_bad == want_bad, [q for q in quarantined if (q["file"].removeprefix(prefix), q["line"])
                                     not in want_bad]
        assert got_good == want_good
        assert all(q["reason"] and q["kind"] == "exchanges" for q in quarantined)
        assert report.quarantined == len(quarantined)
        assert report.exchanges_added == len(kept) == report.exchanges_read
        rows_in = sum(len(s.rows) for s in shards)
        assert rows_in == len(kept) + len(quarantined)
        return rows_in, len(quarantined)


TOTALS: Counter[str] = Counter()


def _count(shards: list[Shard]) -> None:
    rows_in, bad = _check(shards)
    for shard in shards:
        CASES.update(shard.cases)
    TOTALS["examples"] += 1
    TOTALS["rows in"] += rows_in
    TOTALS["quarantined"] += bad
    TOTALS["files"] += len(shards)


@FUZZ
@given(traffic())
def test_no_crash_every_bad_row_quarantined_every_good_row_kept(shards: list[Shard]) -> None:
    _count(shards)


@st.composite
def broken_files(draw: st.DrawFn) -> list[Shard]:
    """Unreadable Parquet files between readable shards: each one quarantine entry, the others read."""
    shards = [draw(parquet_shard(0, 0, ["truncated", "zero-bytes", "garbage"]))]
    shards.append(draw(jsonl_shard(1, 1000)))
    shards.append(draw(parquet_shard(2, 2000, ["truncated", "columnar"])))
    return shards


@settings(FUZZ, max_examples=25)
@given(broken_files())
def test_unreadable_files_never_stop_the_others(shards: list[Shard]) -> None:
    _count(shards)


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    """With ``DISTILLGUARD_FUZZ_REPORT=path``, the counts of what ran are written there (JSON)."""
    yield
    target = os.environ.get("DISTILLGUARD_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps({"totals": dict(TOTALS), "cases": dict(sorted(CASES.items()))}, indent=1))
