"""Sharded, streaming writers for exchange rows: zstd-compressed JSONL or Parquet.

Parquet needs one fixed type per column, so message ``content`` is always a list
of parts and tool ``parameters`` (free-form JSON Schema) are stored as JSON text;
``docs/exchange-log-parquet.md`` documents this backward-compatible encoding.
Rows that name their ``endpoint`` (scenarios with several request shapes) go to
one file per shape in each shard, ``part-NNNNN-<shape>.parquet``, each with the
columns of its shape (Responses ``input`` is then always a list of items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

_PART = pa.struct([("type", pa.string()), ("text", pa.string()),
                   ("image_url", pa.struct([("url", pa.string())]))])
_FUNC_CALL = pa.struct([("name", pa.string()), ("arguments", pa.string())])
PARQUET_EXCHANGES = pa.schema([
    ("exchange_id", pa.string()),
    ("timestamp", pa.string()),
    ("account_id", pa.string()),
    ("api_key_id", pa.string()),
    ("client", pa.struct([("ip", pa.string()), ("asn", pa.int64()), ("country", pa.string()),
                          ("user_agent", pa.string()), ("tls_fingerprint", pa.string())])),
    ("request", pa.struct([
        ("model", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.list_(_PART))]))),
        ("tools", pa.list_(pa.struct([("type", pa.string()), ("function", pa.struct([
            ("name", pa.string()), ("description", pa.string()), ("parameters", pa.string())]))]))),
        ("max_tokens", pa.int64()), ("temperature", pa.float64()), ("n", pa.int64()),
        ("stream", pa.bool_()), ("reasoning_effort", pa.string()),
    ])),
    ("response", pa.struct([
        ("status", pa.int32()), ("finish_reason", pa.string()), ("content", pa.string()),
        ("reasoning_content", pa.string()),
        ("tool_calls", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()),
                                           ("function", _FUNC_CALL)]))),
        ("usage", pa.struct([("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
                             ("reasoning_tokens", pa.int64())])),
        ("latency_ms", pa.int64()),
    ])),
    ("conversation_id", pa.string()),
])
_ENDPOINT = pa.field("endpoint", pa.string())
_SHAPE_OF = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/messages": "messages",
             "/v1/completions": "completions"}


def _with_request(request: pa.DataType) -> pa.Schema:
    schema = PARQUET_EXCHANGES.set(PARQUET_EXCHANGES.get_field_index("request"), pa.field("request", request))
    return schema.append(_ENDPOINT)


SHAPE_SCHEMAS = {
    "": PARQUET_EXCHANGES,  # rows without ``endpoint``
    "chat": PARQUET_EXCHANGES.append(_ENDPOINT),
    "responses": _with_request(pa.struct([
        ("model", pa.string()), ("instructions", pa.string()),
        ("input", pa.list_(pa.struct([("role", pa.string()), ("content", pa.list_(pa.struct([
            ("type", pa.string()), ("text", pa.string()), ("image_url", pa.string())])))]))),
        ("tools", pa.list_(pa.struct([("type", pa.string()), ("name", pa.string()),
                                      ("description", pa.string()), ("parameters", pa.string())]))),
        ("max_output_tokens", pa.int64()), ("temperature", pa.float64()), ("stream", pa.bool_()),
        ("reasoning", pa.struct([("effort", pa.string())])),
    ])),
    "messages": _with_request(pa.struct([
        ("model", pa.string()), ("system", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.list_(pa.struct([
            ("type", pa.string()), ("text", pa.string()),
            ("source", pa.struct([("type", pa.string()), ("url", pa.string())]))])))]))),
        ("tools", pa.list_(pa.struct([("name", pa.string()), ("description", pa.string()),
                                      ("input_schema", pa.string())]))),
        ("max_tokens", pa.int64()), ("temperature", pa.float64()), ("stream", pa.bool_()),
        ("thinking", pa.struct([("type", pa.string()), ("budget_tokens", pa.int64())])),
    ])),
    "completions": _with_request(pa.struct([
        ("model", pa.string()), ("prompt", pa.string()), ("max_tokens", pa.int64()),
        ("temperature", pa.float64()), ("n", pa.int64()), ("stream", pa.bool_()),
    ])),
}


class ShardWriter:
    """Writes ``exchanges/part-NNNNN.<ext>`` files of at most ``rows_per_shard`` rows."""

    def __init__(self, out_dir: Path, fmt: str, rows_per_shard: int = 250_000, first_shard: int = 0) -> None:
        self.dir = Path(out_dir) / "exchanges"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fmt, self.rows_per_shard = fmt, rows_per_shard
        self.shard, self.in_shard = first_shard, 0
        self._jsonl: Any = None
        self._parquet: dict[str, pq.ParquetWriter] = {}  # by shape ("" for rows without endpoint)
        # id -> (the list itself, kept alive so the id stays unique; its Parquet form)
        self._tool_cache: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}

    def write(self, rows: list[dict[str, Any]]) -> None:
        while rows:
            room = self.rows_per_shard - self.in_shard
            head, rows = rows[:room], rows[room:]
            self._write(head)
            self.in_shard += len(head)
            if self.in_shard >= self.rows_per_shard:
                self._close_shard()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        name = self.dir / f"part-{self.shard:05d}"
        if self.fmt == "jsonl":
            if self._jsonl is None:
                self._raw = open(name.with_suffix(".jsonl.zst"), "wb")  # noqa: SIM115
                self._jsonl = zstandard.ZstdCompressor(level=3).stream_writer(self._raw)
            self._jsonl.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        else:
            by_shape: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                by_shape.setdefault(_SHAPE_OF[r["endpoint"]] if "endpoint" in r else "", []).append(r)
            for shape, part in by_shape.items():
                schema = SHAPE_SCHEMAS[shape]
                table = pa.Table.from_pylist([self._parquet_row(r, shape) for r in part], schema=schema)
                if shape not in self._parquet:
                    path = name.with_suffix(".parquet") if not shape else self.dir / f"{name.name}-{shape}.parquet"
                    self._parquet[shape] = pq.ParquetWriter(path, schema, compression="zstd")
                self._parquet[shape].write_table(table)

    def _close_shard(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._raw.close()
            self._jsonl = None
        for writer in self._parquet.values():
            writer.close()
        self._parquet = {}
        self.shard += 1
        self.in_shard = 0

    def close(self) -> None:
        self._close_shard()


    def _parquet_row(self, r: dict[str, Any], shape: str = "") -> dict[str, Any]:
        req = dict(r["request"])
        if shape == "responses":
            items = req["input"] if isinstance(req["input"], list) else [{"role": "user", "content": req["input"]}]
            req["input"] = [{"role": m["role"], "content": [
                {"type": "output_text" if m["role"] == "assistant" else "input_text", "text": m["content"]}]
                if isinstance(m["content"], str) else m["content"]} for m in items]
        elif shape in ("", "chat"):
            req["messages"] = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]
                                if isinstance(m["content"], str) else m["content"]} for m in req["messages"]]
        if req.get("tools"):
            req["tools"] = self._tools(req["tools"], shape)
        return {**r, "request": req}

    def _tools(self, tools: list[dict[str, Any]], shape: str = "") -> list[dict[str, Any]]:
        """Tool lists come from a fixed pool: encode each distinct list once."""
        key = id(tools)
        if key not in self._tool_cache:
            if shape == "responses":
                enc = [{**t, "parameters": orjson.dumps(t.get("parameters")).decode()} for t in tools]
            elif shape == "messages":
                enc = [{**t, "input_schema": orjson.dumps(t.get("input_schema")).decode()} for t in tools]
            else:
                enc = [{"type": t["type"], "function": {
                    **t["function"], "parameters": orjson.dumps(t["function"].get("parameters")).decode()}}
                    for t in tools]
            self._tool_cache[key] = (tools, enc)
        return self._tool_cache[key][1]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row) + b"\n")
