"""Flatten Parquet exchange files in DuckDB from their typed columns, without a Python row.

``rows.exchange_row`` validates any record the exchange-log spec allows, at about
30 µs a row. A Parquet file already carries types, so for the usual layout (the
Chat Completions shape, ``docs/exchange-log-parquet.md``) the same flattening
is a SQL projection that DuckDB runs in parallel over the file (the reader's
columnar decoder, ``reader.py``). ``flatten_sql``
checks the file's schema once: it answers ``None`` (the whole file takes the
Python path) unless every column has a type it handles exactly. Its ``ok``
expression then marks the rows it flattens; the other rows (a null required
field, an unknown role, an Anthropic block, an out-of-range count, a NaN, ...)
go through ``exchange_row``, which gives the same row or the exact quarantine
reason. ``tests/ingest/test_columnar.py`` checks, over valid and mutated rows,
that every row flattened here equals ``exchange_row``'s.

Hand-written because the flattening is this project's own contract; DuckDB does
the work.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from distillguard.ingest.normalize import ANTHROPIC_BLOCKS, IMAGE_PARTS, ROLES
from distillguard.ingest.rows import RESPONSE_KEYS, TIME_MAX, TIME_MIN, TOP_KEYS

__all__ = ["Flatten", "flatten_sql"]

_USAGE_INTS = ("input_tokens", "prompt_tokens", "output_tokens", "completion_tokens", "reasoning_tokens")
# RFC 3339 spellings that ``datetime.fromisoformat`` and DuckDB read alike (checked in the tests).
_TIME = r"^[1-9]\d{3}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)$"
_INT64 = (-(2**63) + 1, 2**63 - 1)  # Python's range check also refuses -2**63
_INT32 = (-(2**31) + 1, 2**31 - 1)  # and of -2**31 in int32 columns
_COUNT64, _COUNT32 = (0, _INT64[1]), (0, _INT32[1])  # counts (tokens, choices) are never negative
_TIME_RANGE = f"TIMESTAMPTZ '{TIME_MIN.isoformat()}' AND TIMESTAMPTZ '{TIME_MAX.isoformat()}'"


@dataclass(frozen=True)
class Flatten:
    """SQL over a relation ``t`` (one Parquet row, plus ``file_row_number``).

    ``ok``: the row is flattened here; ``columns``: the ``exchanges`` select list
    (without ``source_file``, ``source_line``).
    """

    ok: str
    columns: str


class _Unsupported(Exception):
    """The schema has a column this path does not handle exactly."""


def flatten_sql(schema: pa.Schema) -> Flatten | None:
    """The flattening of a Parquet file with ``schema``, or None when it must take the Python path.

    >>> s = pa.schema([("exchange_id", pa.string()), ("timestamp", pa.string()), ("account_id", pa.string()),
    ...     ("request", pa.struct([("messages", pa.list_(pa.struct([("role", pa.string()),
    ...                                                             ("content", pa.string())])))]))])
    >>> flatten_sql(s) is not None, flatten_sql(s.append(pa.field("mystery", pa.string())))
    (True, None)
    """
    try:
        return _Builder(schema).build()
    except _Unsupported:
        return None


def _sql_list(values: tuple[str, ...] | frozenset[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in sorted(values)) + "]"


def _is_int(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t)) and t != pa.uint64()


def _floats(t: pa.DataType) -> bool:
    """Whether ``t`` holds a float anywhere (NaN is not JSON: such rows need the Python path's verdict)."""
    if pa.types.is_floating(t):
        return True
    if pa.types.is_struct(t):
        return any(_floats(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _floats(t.value_type)
    if pa.types.is_map(t):
        return _floats(t.key_type) or _floats(t.item_type)
    return False


def _fields(t: pa.DataType) -> dict[str, pa.DataType]:
    return {t.field(i).name: t.field(i).type for i in range(t.num_fields)}


class _Builder:
    """Builds the ``Flatten`` for one schema; raises ``_Unsupported`` at the first type it cannot handle."""

    def __init__(self, schema: pa.Schema) -> None:
        self.top = {f.name: f.type for f in schema}
        self.checks: list[str] = []

    def build(self) -> Flatten:
        if not set(self.top) <= TOP_KEYS:
            raise _Unsupported("unknown top-level column")  # they go to extra_json
        for name in ("exchange_id", "timestamp", "account_id"):
            self._string(self.top, name, required=True)
        self.checks += ["t.exchange_id <> ''", "regexp_matches(t.account_id, '[0-9A-Za-z]')",
                        f"regexp_matches(t.timestamp, '{_TIME}')", "TRY_CAST(t.timestamp AS TIMESTAMPTZ) IS NOT NULL",
                        f"TRY_CAST(t.timestamp AS TIMESTAMPTZ) BETWEEN {_TIME_RANGE}"]
        columns = {
            "exchange_id": "t.exchange_id",
            "timestamp": "CAST(t.timestamp AS TIMESTAMPTZ)",
            "account_id": "t.account_id",
            "api_key_id": self._string(self.top, "api_key_id"),
            "conversation_id": self._string(self.top, "conversation_id"),
            **self._client(),
            **self._request(),
            **self._response(),
            "extra_json": "CAST(NULL AS VARCHAR)",
        }
        ok = " AND ".join(f"coalesce({c}, false)" for c in self.checks)
        return Flatten(ok, ",\n".join(f"{sql} AS {name}" for name, sql in columns.items()))

    # -- column kinds ---------------------------------------------------------------------------
    def _string(self, fields: dict[str, pa.DataType], name: str, path: str = "t", required: bool = False) -> str:
        if name not in fields:
            if required:
                raise _Unsupported(name)
            return "CAST(NULL AS VARCHAR)"
        if not (pa.types.is_string(fields[name]) or pa.types.is_large_string(fields[name])):
            raise _Unsupported(name)
        if required:
            self.checks.append(f"{path}.{name} IS NOT NULL")
        return f"{path}.{name}"

    def _int(self, fields: dict[str, pa.DataType], name: str, path: str, bounds: tuple[int, int] = _INT64) -> str:
        if name not in fields:
            return "CAST(NULL AS BIGINT)"
        if not _is_int(fields[name]):
            raise _Unsupported(name)
        self.checks.append(f"({path}.{name} IS NULL OR {path}.{name} BETWEEN {bounds[0]} AND {bounds[1]})")
        return f"CAST({path}.{name} AS BIGINT)"

    def _float(self, fields: dict[str, pa.DataType], name: str, path: str) -> str:
        if name not in fields:
            return "CAST(NULL AS DOUBLE)"
        t = fields[name]
        if _is_int(t):
            return f"CAST({path}.{name} AS DOUBLE)"
        if not pa.types.is_floating(t):
            raise _Unsupported(name)
        self.checks.append(f"({path}.{name} IS NULL OR isfinite({path}.{name}))")
        return f"CAST({path}.{name} AS DOUBLE)"

    def _int_or(self, fields: dict[str, pa.DataType], first: str, second: str, path: str) -> str:
        """Python's ``a or b`` of two counts: a zero or absent first value falls through to the second."""
        a, b = self._int(fields, first, path, _COUNT64), self._int(fields, second, path, _COUNT64)
        return f"CASE WHEN coalesce({a}, 0) <> 0 THEN {a} ELSE {b} END"

    # -- the three structs ----------------------------------------------------------------------
    def _struct(self, name: str) -> dict[str, pa.DataType] | None:
        if name not in self.top:
            return None
        if not pa.types.is_struct(self.top[name]):
            raise _Unsupported(name)
        return _fields(self.top[name])

    def _client(self) -> dict[str, str]:
        f = self._struct("client") or {}
        for extra, t in f.items():
            if extra not in ("ip", "asn", "country", "user_agent", "tls_fingerprint") and _floats(t):
                raise _Unsupported(f"client.{extra}")
        return {
            "client_ip": self._string(f, "ip", "t.client"),
            "client_asn": self._int(f, "asn", "t.client"),
            "client_country": self._string(f, "country", "t.client"),
            "user_agent": self._string(f, "user_agent", "t.client"),
            "tls_fingerprint": self._string(f, "tls_fingerprint", "t.client"),
        }

    def _request(self) -> dict[str, str]:
        f = self._struct("request")
        if f is None or "messages" not in f or "system" in f:  # a "system" key makes it Anthropic-shaped
            raise _Unsupported("request")
        self.checks.append("t.request IS NOT NULL AND t.request.messages IS NOT NULL")
        text, images = self._messages(f["messages"])
        roles = _sql_list(ROLES)
        self.checks.append(f"list_bool_and(list_transform(t.request.messages, lambda m: "
                           f"coalesce(m.role IN {roles}, false))) IS NOT FALSE")
        for name in ("tools", "functions"):
            if name in f and not pa.types.is_list(f[name]):
                raise _Unsupported(f"request.{name}")
        tools, functions = (f"len(coalesce(t.request.{n}, []))" if n in f else "0" for n in ("tools", "functions"))
        others = [n for n, t in f.items() if n not in ("temperature",) and _floats(t)]
        if others:  # a NaN anywhere in the request makes the record invalid JSON
            self.checks.append("NOT regexp_matches(to_json(t.request), '[:,\\[]-?(NaN|Infinity)')")
        stream = "CAST(NULL AS BOOLEAN)"
        if "stream" in f:
            if not pa.types.is_boolean(f["stream"]):
                raise _Unsupported("request.stream")
            stream = "t.request.stream"
        users = "list_filter(t.request.messages, lambda m: m.role = 'user')"
        system = "list_filter(t.request.messages, lambda m: m.role IN ('system', 'developer'))"
        return {
            "request_format": "'chat'",
            "model": self._string(f, "model", "t.request"),
            "system_text": f"CASE WHEN len({system}) > 0 THEN array_to_string("
                           f"list_transform({system}, lambda m: {text}), chr(10)) END",
            "prompt_text": f"coalesce(list_transform({users}, lambda m: {text})[-1], '')",
            "n_messages": "CAST(len(t.request.messages) AS INTEGER)",
            "n_user_turns": f"CAST(len({users}) AS INTEGER)",
            "n_tools": f"CAST(CASE WHEN {tools} > 0 THEN {tools} ELSE {functions} END AS INTEGER)",
            "n_images": f"CAST(coalesce(list_sum(list_transform(t.request.messages, lambda m: {images})), 0) "
                        "AS INTEGER)",
            "max_tokens": self._int_or(f, "max_tokens", "max_completion_tokens", "t.request"),
            "temperature": self._float(f, "temperature", "t.request"),
            "n_choices": f"CAST({self._int(f, 'n', 't.request', _COUNT32)} AS INTEGER)",
            "stream": stream,
        }

    def _messages(self, t: pa.DataType) -> tuple[str, str]:
        """SQL for one message ``m``'s text and image count; checks its parts."""
        if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type):
            raise _Unsupported("request.messages")
        m = _fields(t.value_type)
        if "role" not in m or not pa.types.is_string(m["role"]) or _floats(t.value_type):
            raise _Unsupported("request.messages.role")
        content = m.get("content")
        if content is None:
            return "''", "0"
        if pa.types.is_string(content):
            return "coalesce(m.content, '')", "0"
        if not (pa.types.is_list(content) and pa.types.is_struct(content.value_type)):
            raise _Unsupported("request.messages.content")
        part = _fields(content.value_type)
        for name in ("type", "text"):
            if name in part and not pa.types.is_string(part[name]):
                raise _Unsupported(f"request.messages.content.{name}")
        if "type" in part:
            self.checks.append(f"list_bool_and(list_transform(t.request.messages, lambda m: list_bool_and("
                               f"list_transform(m.content, lambda p: p IS NULL OR p.type IS NULL "
                               f"OR p.type NOT IN {_sql_list(ANTHROPIC_BLOCKS)})) IS NOT FALSE)) IS NOT FALSE")
        is_image = f"coalesce(p.type IN {_sql_list(IMAGE_PARTS)}, false)" if "type" in part else "false"
        if "text" not in part:
            return "''", f"len(list_filter(coalesce(m.content, []), lambda p: {is_image}))"
        text = (f"array_to_string(list_transform(list_filter(coalesce(m.content, []), lambda p: "
                f"p IS NOT NULL AND NOT {is_image} AND p.text IS NOT NULL), lambda p: p.text), chr(10))")
        return text, f"len(list_filter(coalesce(m.content, []), lambda p: {is_image}))"

    def _response(self) -> dict[str, str]:
        f = self._struct("response") or {}
        if not set(f) <= RESPONSE_KEYS:
            raise _Unsupported("response")  # unknown keys go to extra_json
        if "tool_calls" in f and _floats(f["tool_calls"]):
            raise _Unsupported("response.tool_calls")
        usage: dict[str, pa.DataType] = {}
        if "usage" in f:
            if not pa.types.is_struct(f["usage"]):
                raise _Unsupported("response.usage")
            usage = _fields(f["usage"])
            if any(_floats(t) for n, t in usage.items() if n not in _USAGE_INTS):
                raise _Unsupported("response.usage")
        calls = "0"
        if "tool_calls" in f:
            calls = "len(coalesce(t.response.tool_calls, []))" if pa.types.is_list(f["tool_calls"]) else "0"
        return {
            "status": f"CAST({self._int(f, 'status', 't.response', _INT32)} AS INTEGER)",
            "finish_reason": self._string(f, "finish_reason", "t.response"),
            "response_text": self._string(f, "content", "t.response"),
            "reasoning_text": self._string(f, "reasoning_content", "t.response"),
            "n_tool_calls": f"CAST({calls} AS INTEGER)",
            "input_tokens": self._int_or(usage, "input_tokens", "prompt_tokens", "t.response.usage"),
            "output_tokens": self._int_or(usage, "output_tokens", "completion_tokens", "t.response.usage"),
            "reasoning_tokens": self._int(usage, "reasoning_tokens", "t.response.usage", _COUNT64),
            "latency_ms": self._float(f, "latency_ms", "t.response"),
            "request_json": "CAST(to_json(t.request) AS VARCHAR)",
        }
