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
from datetime import UTC, datetime
from typing import Any

import orjson

from distillguard.ingest.normalize import RowProblem, content_text, kind_of, normalize_request, prompt_parts

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


def exchange_row(rec: Any, raw: bytes | None = None) -> dict[str, Any]:
    """Validate and flatten one exchange record (see the exchange-log spec)."""
    if not isinstance(rec, dict):
        raise RowProblem(f"expected a JSON object, got {kind_of(rec)}")
    account_id = _required_str(rec, "account_id")
    ts = parse_time(rec.get("timestamp"), "timestamp", required=True)
    exchange_id = _opt_str(rec, "exchange_id") or _derived_id(rec, raw)
    client = _opt_obj(rec, "client")
    request = _opt_obj(rec, "request")
    if request is None:
        raise RowProblem("missing required field 'request'")
    req, fmt = normalize_request(request)
    system_text, last_user, n_user, n_images = prompt_parts(req["messages"])
    tools = req.get("tools") or req.get("functions") or []
    if not isinstance(tools, list):
        raise RowProblem(f"'request.tools' must be a list, got {kind_of(tools)}")
    resp = _opt_obj(rec, "response")
    resp = resp or {}
    usage = _opt_obj(resp, "usage", "response.usage") or {}
    tool_calls = resp.get("tool_calls") or []
    extra = {k: v for k, v in rec.items() if k not in TOP_KEYS}
    resp_extra = {k: v for k, v in resp.items() if k not in RESPONSE_KEYS}
    if resp_extra:
        extra["response"] = resp_extra
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
        "request_format": fmt,
        "model": _opt_str(req, "model", "request.model"),
        "system_text": system_text,
        "prompt_text": last_user,
        "n_messages": len(req["messages"]),
        "n_user_turns": n_user,
        "n_tools": len(tools),
        "n_images": n_images,
        "max_tokens": _opt_int(req, "max_tokens", "request.max_tokens")
        or _opt_int(req, "max_completion_tokens", "request.max_completion_tokens"),
        "temperature": _opt_float(req, "temperature", "request.temperature"),
        "n_choices": _opt_int(req, "n", "request.n", _INT32_MAX),
        "stream": _opt_bool(req, "stream", "request.stream"),
        "status": _opt_int(resp, "status", "response.status", _INT32_MAX),
        "finish_reason": _opt_str(resp, "finish_reason", "response.finish_reason"),
        "response_text": _opt_text(resp, "content", "response.content"),
        "reasoning_text": _opt_text(resp, "reasoning_content", "response.reasoning_content"),
        "n_tool_calls": len(tool_calls) if isinstance(tool_calls, list) else 0,
        "input_tokens": _opt_int(usage, "input_tokens", "response.usage.input_tokens")
        or _opt_int(usage, "prompt_tokens", "response.usage.prompt_tokens"),
        "output_tokens": _opt_int(usage, "output_tokens", "response.usage.output_tokens")
        or _opt_int(usage, "completion_tokens", "response.usage.completion_tokens"),
        "reasoning_tokens": _opt_int(usage, "reasoning_tokens", "response.usage.reasoning_tokens"),
        "latency_ms": _opt_float(resp, "latency_ms", "response.latency_ms"),
        "request_json": orjson.dumps(req).decode(),
        "extra_json": orjson.dumps(extra).decode() if extra else None,
    }


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
    return parsed.astimezone(UTC)


def _derived_id(rec: dict[str, Any], raw: bytes | None) -> str:
    """A stable id for records without one, so re-ingest stays idempotent."""
    payload = raw if raw is not None else orjson.dumps(rec, option=orjson.OPT_SORT_KEYS, default=str)
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
