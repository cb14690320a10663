"""Turn one decoded log record into one flat row of the store, or say why not.

Every check names the field; the caller adds ``file:line`` and quarantines.

>>> row = exchange_row({"exchange_id": "e1", "timestamp": "2026-02-01T12:00:00Z",
...     "account_id": "a1", "request": {"messages": [{"role": "user", "content": "Hi"}]}})
>>> row["prompt_text"], row["request_format"], row["timestamp"].isoformat()
('Hi', 'chat', '2026-02-01T12:00:00+00:00')
>>> exchange_row({"timestamp": "2026-02-01T12:00:00Z", "request": {"messages": []}})
Traceback (most recent call last):
...
distillguard.ingest.normalize.RowProblem: missing required field 'account_id'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from distillguard.ingest.clip import DEPTH_MARK, MAX_DEPTH
from distillguard.ingest.normalize import Notes, RowProblem, content_text, kind_of, prompt_parts, read_request
from distillguard.ingest.request_fields import request_settings

TOP_KEYS = frozenset(
    {"exchange_id", "timestamp", "account_id", "api_key_id", "client", "request", "response",
     "conversation_id"}
)
"""Top-level record keys with a column; any other key goes to ``extra_json``."""
RESPONSE_KEYS = frozenset(
    {"status", "finish_reason", "content", "reasoning_content", "tool_calls", "usage", "latency_ms"}
)
"""``response`` keys with a column; any other goes to ``extra_json``."""
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1
TIME_MIN = datetime(1677, 9, 21, 0, 12, 44, tzinfo=UTC)
TIME_MAX = datetime(2262, 4, 11, 23, 47, 16, tzinfo=UTC)
"""Times a nanosecond timestamp holds, so every engine and stage can compute with them."""


def exchange_row(rec: Any, raw: bytes | None = None, notes: Iterable[str] = ()) -> dict[str, Any]:
    """Validate and flatten one exchange record (see the exchange-log spec).

    The request is read leniently (``normalize.read_request``): its problems and
    the reader's ``notes`` go to ``extra_json`` under ``_ingest_notes``; every
    other field is checked strictly and a problem raises ``RowProblem``.
    """
    if not isinstance(rec, dict):
        raise RowProblem(f"expected a JSON object, got {kind_of(rec)}")
    account_id = _required_str(rec, "account_id")
    ts = parse_time(rec.get("timestamp"), "timestamp", required=True)
    exchange_id = _opt_str(rec, "exchange_id") or _derived_id(rec, raw)
    client = _opt_obj(rec, "client")
    resp = _opt_obj(rec, "response") or {}
    usage = _opt_obj(resp, "usage", "response.usage") or {}
    tokens = {name: _usage(usage, first, second) for name, first, second in _USAGE}
    read = read_request(rec.get("request", {}))
    read.notes[:0] = notes
    if "request" not in rec:
        read.notes.add("no 'request': no message read")
    system_text, last_user, n_user, n_images = prompt_parts(read.messages)
    settings = request_settings(read.request if isinstance(read.request, dict) else {}, read.notes)
    tool_calls = resp.get("tool_calls") or []
    extra = {k: v for k, v in rec.items() if k not in TOP_KEYS}
    resp_extra = {k: v for k, v in resp.items() if k not in RESPONSE_KEYS}
    if resp_extra:
        extra["response"] = resp_extra
    request_json = _dumps(read.request, read.notes, "request")
    extra_json = _dumps(extra, read.notes, "extra fields") if extra else None
    if read.notes:
        extra["_ingest_notes"] = read.notes.final()
        extra_json = _dumps(extra, Notes(), "extra fields")
    return {
        "exchange_id": exchange_id,
        "timestamp": ts,
        "account_id": account_id,
        "api_key_id": _opt_str(rec, "api_key_id"),
        "conversation_id": _opt_str(rec, "conversation_id"),
        "client_ip": _opt_str(client, "ip", "client.ip"),
        "client_asn": _opt_int(client, "asn", "client.asn"),
        "client_country": _opt_str(client, "country", "client.country"),
        "user_agent": _opt_str(client, "user_agent", "client.user_agent"),
        "tls_fingerprint": _opt_str(client, "tls_fingerprint", "client.tls_fingerprint"),
        # Anthropic Messages with plain text blocks and no system prompt reads as chat; the path says which.
        "request_format": "anthropic" if read.format == "chat" and rec.get("endpoint") == "/v1/messages"
        else read.format,
        "model": settings["model"],
        "system_text": system_text,
        "prompt_text": last_user,
        "n_messages": len(read.messages),
        "n_user_turns": n_user,
        "n_tools": settings["n_tools"],
        "n_images": n_images,
        "max_tokens": settings["max_tokens"],
        "temperature": settings["temperature"],
        "n_choices": settings["n_choices"],
        "stream": settings["stream"],
        "status": _opt_int(resp, "status", "response.status", _INT32_MAX),
        "finish_reason": _opt_str(resp, "finish_reason", "response.finish_reason"),
        "response_text": _opt_text(resp, "content", "response.content"),
        "reasoning_text": _opt_text(resp, "reasoning_content", "response.reasoning_content"),
        "n_tool_calls": len(tool_calls) if isinstance(tool_calls, list) else 0,
        **tokens,
        "latency_ms": _opt_float(resp, "latency_ms", "response.latency_ms"),
        "request_json": request_json,
        "extra_json": extra_json,
    }


_USAGE = (("input_tokens", "input_tokens", "prompt_tokens"), ("output_tokens", "output_tokens", "completion_tokens"),
          ("reasoning_tokens", "reasoning_tokens", None))


def _usage(usage: dict[str, Any], first: str, second: str | None) -> int | None:
    """A token count of ``response.usage``: ``first``, or ``second`` when that is absent or 0; never negative."""
    counts = [_opt_int(usage, key, f"response.usage.{key}") for key in (first, second) if key]
    for key, value in zip((first, second), counts, strict=False):
        if value is not None and value < 0:
            raise RowProblem(f"field 'response.usage.{key}' is negative: {value}")
    return counts[0] if second is None else counts[0] or counts[1]


def _dumps(value: Any, notes: Notes, what: str) -> str:
    """JSON text of ``value``; containers nested deeper than ``MAX_DEPTH`` are replaced by a mark.

    >>> _dumps({"n": 2**70}, Notes(), "extra fields")  # beyond orjson's 64 bits: written exactly
    '{"n":1180591620717411303424}'
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass  # nested deeper than orjson writes, or an integer beyond 64 bits
    cut: list[int] = []
    clipped = _clip_depth(value, MAX_DEPTH, cut)
    if cut:
        notes.add(f"{what} nested deeper than {MAX_DEPTH} levels: the deeper part is replaced by a mark")
    # The standard library writes integers of any size exactly; orjson stops at 64 bits.
    return json.dumps(clipped, ensure_ascii=False, separators=(",", ":"))


def _clip_depth(value: Any, depth: int, cut: list[int]) -> Any:
    """``value`` with containers below ``depth`` replaced by ``DEPTH_MARK`` (one entry in ``cut`` each)."""
    if not isinstance(value, dict | list):
        return value
    if depth <= 0:
        cut.append(1)
        return DEPTH_MARK
    if isinstance(value, dict):
        return {k: _clip_depth(v, depth - 1, cut) for k, v in value.items()}
    return [_clip_depth(v, depth - 1, cut) for v in value]


def account_row(rec: Any) -> dict[str, Any]:
    """Validate one ``accounts`` record."""
    if not isinstance(rec, dict):
        raise RowProblem(f"expected a JSON object, got {kind_of(rec)}")
    known = ("account_id", "created_at", "signup_path", "tier", "payment_fingerprint",
             "email_domain", "country", "organization_id")
    extra = {k: v for k, v in rec.items() if k not in known}
    row: dict[str, Any] = {"account_id": _required_str(rec, "account_id"),
                           "created_at": parse_time(rec.get("created_at"), "created_at")}
    for key in known[2:]:
        row[key] = _opt_str(rec, key)
    row["extra_json"] = orjson.dumps(extra).decode() if extra else None
    return row


def event_row(rec: Any) -> dict[str, Any]:
    """Validate one ``events`` record."""
    if not isinstance(rec, dict):
        raise RowProblem(f"expected a JSON object, got {kind_of(rec)}")
    extra = {k: v for k, v in rec.items() if k not in ("timestamp", "type", "model")}
    return {
        "timestamp": parse_time(rec.get("timestamp"), "timestamp", required=True),
        "type": _required_str(rec, "type"),
        "model": _opt_str(rec, "model"),
        "extra_json": orjson.dumps(extra).decode() if extra else None,
    }


def parse_time(value: Any, name: str, *, required: bool = False) -> datetime | None:
    """Parse an RFC 3339 time (offset required) to UTC.

    >>> parse_time("2026-02-01T13:00:00+01:00", "t").isoformat()
    '2026-02-01T12:00:00+00:00'
    """
    if value is None:
        if required:
            raise RowProblem(f"missing required field '{name}'")
        return None
    if isinstance(value, datetime):  # from Parquet
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RowProblem(f"field '{name}' is not an RFC 3339 time: {value[:40]!r}") from None
    else:
        raise RowProblem(f"field '{name}' must be an RFC 3339 string, got {kind_of(value)}")
    if parsed.tzinfo is None:
        raise RowProblem(f"field '{name}' has no UTC offset: {str(value)[:40]!r}")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        raise RowProblem(f"field '{name}' is out of range: {str(value)[:40]!r}") from None
    if not TIME_MIN <= parsed <= TIME_MAX:
        raise RowProblem(f"field '{name}' is out of range (years 1677 to 2262): {str(value)[:40]!r}")
    return parsed


def _derived_id(rec: dict[str, Any], raw: bytes | None) -> str:
    """A stable id for records without one, so re-ingest stays idempotent."""
    if raw is not None:
        return "sha1-" + hashlib.sha1(raw.strip(), usedforsecurity=False).hexdigest()
    try:
        payload = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # nested too deep for orjson, or an integer beyond 64 bits
        payload = json.dumps(_clip_depth(rec, MAX_DEPTH, []), sort_keys=True, separators=(",", ":"),
                             default=str).encode()
    return "sha1-" + hashlib.sha1(payload.strip(), usedforsecurity=False).hexdigest()


def _required_str(rec: dict[str, Any], key: str) -> str:
    value = rec.get(key)
    if value is None:
        raise RowProblem(f"missing required field '{key}'")
    if not isinstance(value, str):
        raise RowProblem(f"field '{key}' must be a string, got {kind_of(value)}")
    if not value.strip():
        raise RowProblem(f"field '{key}' is empty")
    return value


def _opt_obj(rec: dict[str, Any], key: str, name: str | None = None) -> dict[str, Any] | None:
    value = rec.get(key)
    if value is not None and not isinstance(value, dict):
        raise RowProblem(f"field '{name or key}' must be an object, got {kind_of(value)}")
    return value


def _opt_str(rec: dict[str, Any] | None, key: str, name: str | None = None) -> str | None:
    value = rec.get(key) if rec else None
    if value is None or isinstance(value, str):
        return value
    raise RowProblem(f"field '{name or key}' must be a string, got {kind_of(value)}")


def _opt_text(rec: dict[str, Any], key: str, name: str) -> str | None:
    """Text that may come as a string or as a list of text parts."""
    value = rec.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return content_text(value)[0]
    raise RowProblem(f"field '{name}' must be a string or a list of parts, got {kind_of(value)}")


def _opt_int(rec: dict[str, Any] | None, key: str, name: str, limit: int = _INT64_MAX) -> int | None:
    """An optional integer whose absolute value is at most ``limit`` (the store column's range)."""
    value = rec.get(key) if rec else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowProblem(f"field '{name}' must be an integer, got {kind_of(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise RowProblem(f"field '{name}' must be an integer, got {value}")
    if abs(value) > limit:
        raise RowProblem(f"field '{name}' is out of range: {value}")
    return int(value)


def _opt_float(rec: dict[str, Any], key: str, name: str) -> float | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowProblem(f"field '{name}' must be a number, got {kind_of(value)}")
    return float(value)


def _opt_bool(rec: dict[str, Any], key: str, name: str) -> bool | None:
    value = rec.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise RowProblem(f"field '{name}' must be true or false, got {kind_of(value)}")
