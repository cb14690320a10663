"""Typed request settings (``max_tokens``, ``n``, ``stream``, ...) read as the client sent them.

The request is the client's own input: an odd value never makes the row
unusable. A value of the right type is read; the usual string spellings of one
(``"10"``, ``"0.5"``, ``"true"``) are read with a note; anything else, or a
value out of range (a negative ``max_tokens``), gives null with a note. The
value itself stays in ``request_json``.

>>> notes = Notes()
>>> request_settings({"max_tokens": "10", "stream": "true", "n": -1, "model": 5}, notes)["max_tokens"]
10
>>> notes
["'request.max_tokens' is the string '10': read as 10", "'request.n' is out of range: -1, not read", \
"'request.stream' is the string 'true': read as True", "'request.model' must be a string, got int: not read"]
"""

from __future__ import annotations

import math
import re
from typing import Any

from distillguard.ingest.normalize import Notes, kind_of

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
_INT_TEXT = re.compile(r"\s*[+-]?\d{1,19}\s*")
_FLOAT_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def request_settings(req: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """The ``exchanges`` columns read from a chat-shaped request's settings."""
    tools = req.get("tools") or req.get("functions") or []
    if not isinstance(tools, list):
        notes.add(f"'request.tools' must be a list, got {kind_of(tools)}: not read")
        tools = []
    return {
        "max_tokens": _int(req, "max_tokens", notes) or _int(req, "max_completion_tokens", notes),
        "n_choices": _int(req, "n", notes, INT32_MAX),
        "temperature": _float(req, "temperature", notes),
        "stream": _bool(req, "stream", notes),
        "model": _str(req, "model", notes),
        "n_tools": len(tools),
    }


def _int(req: dict[str, Any], key: str, notes: Notes, limit: int = INT64_MAX) -> int | None:
    """A count: an integer from 0 to ``limit``."""
    value = req.get(key)
    if value is None:
        return None
    read: Any = value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        read = int(value)
    if isinstance(read, bool) or not isinstance(read, int | float) or \
            (isinstance(read, float) and not read.is_integer()):
        notes.add(f"'request.{key}' must be an integer, got {_shown(value)}: not read")
        return None
    if not 0 <= read <= limit:
        notes.add(f"'request.{key}' is out of range: {_shown(value)}, not read")
        return None
    if read is not value:
        notes.add(f"'request.{key}' is the string {_shown(value)}: read as {int(read)}")
    return int(read)


def _float(req: dict[str, Any], key: str, notes: Notes) -> float | None:
    value = req.get(key)
    if value is None:
        return None
    read: Any = value
    if isinstance(value, str) and len(value) < 40 and _FLOAT_TEXT.fullmatch(value):
        read = float(value)
    if isinstance(read, bool) or not isinstance(read, int | float) or not math.isfinite(read):
        notes.add(f"'request.{key}' must be a finite number, got {_shown(value)}: not read")
        return None
    if read is not value:
        notes.add(f"'request.{key}' is the string {_shown(value)}: read as {float(read)}")
    return float(read)


def _bool(req: dict[str, Any], key: str, notes: Notes) -> bool | None:
    value = req.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        read = value.strip().lower() == "true"
        notes.add(f"'request.{key}' is the string {_shown(value)}: read as {read}")
        return read
    notes.add(f"'request.{key}' must be true or false, got {_shown(value)}: not read")
    return None


def _str(req: dict[str, Any], key: str, notes: Notes) -> str | None:
    value = req.get(key)
    if value is None or isinstance(value, str):
        return value
    notes.add(f"'request.{key}' must be a string, got {kind_of(value)}: not read")
    return None


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return kind_of(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
