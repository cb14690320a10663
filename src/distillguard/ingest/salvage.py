"""Read the valid JSON lines orjson refuses: nesting over 1,024 levels, lone UTF-16 surrogates.

Both are valid JSON (RFC 8259 leaves surrogates to the reader), and a client
can put either in its request: refusing them would hide the exchange.

>>> salvage_json(b'{"a": "x\\\\ud800"}', "no low surrogate in string")
({'a': 'x\ufffd'}, 'lone UTF-16 surrogates replaced by U+FFFD')
>>> value, note = salvage_json(b'{"a": ' + b'[' * 1500 + b']' * 1500 + b'}', "depth limit exceeded")
>>> note
'1 containers nested deeper than 200 levels replaced by a mark'
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from distillguard.ingest.clip import MAX_DEPTH, Clipper

_SURROGATE = re.compile("[\ud800-\udfff]")


def salvage_json(data: bytes, error: str) -> tuple[Any, str] | None:
    """(value, note) for a line orjson refused with ``error``, or None when it is not valid JSON."""
    if "depth limit" not in error and "surrogate" not in error:
        return None
    clipper = Clipper(None, MAX_DEPTH, len(data) + 1024)
    clipper.feed(data)
    clipped = clipper.result() or b""
    notes = [f"{clipper.cut_containers} containers nested deeper than {MAX_DEPTH} levels replaced by a mark"] \
        if clipper.cut_containers else []
    try:
        value = orjson.loads(clipped)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            return None
        try:
            value = _replaced(json.loads(clipped))
        except (ValueError, RecursionError):
            return None
        notes.append("lone UTF-16 surrogates replaced by U+FFFD")
    return value, "; ".join(notes)


def _replaced(value: Any) -> Any:
    """``value`` (at most ``MAX_DEPTH`` deep) with every lone surrogate replaced."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_SURROGATE.sub("\ufffd", k): _replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v) for v in value]
    return value
