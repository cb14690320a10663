"""Request validation at the gateway: what goes upstream is what ``scan`` can read, typed as the API says.

Each proxied endpoint (chat completions, text completions, responses) has its
own content field (``messages``, ``prompt``, ``input``) and its own output
limit (``max_tokens``/``max_completion_tokens``, ``max_tokens``,
``max_output_tokens``). A field of the wrong type or out of range is a 400
naming the field; nothing is coerced (``"stream": "true"`` is an error, not
``True``), and a served request is always one the exchange-log readers
analyse. Unknown fields pass through untouched (the upstream decides).

>>> check_request("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}],
...               "max_tokens": 10, "n": 2}, max_output_tokens=1000, max_n=8)
Checked(stream=False, choices=2, max_output=10)
>>> check_request("/v1/chat/completions", {"model": "m", "messages": [], "max_tokens": "10"},
...               max_output_tokens=1000, max_n=8)
Traceback (most recent call last):
...
distillguard.gateway.reject.Reject: 'messages' must not be empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distillguard.gateway.reject import Reject

ROLES = ("system", "developer", "user", "assistant", "tool")
CHAT, COMPLETIONS, RESPONSES = "/v1/chat/completions", "/v1/completions", "/v1/responses"
LIMIT_FIELDS = {CHAT: ("max_tokens", "max_completion_tokens"), COMPLETIONS: ("max_tokens",),
                RESPONSES: ("max_output_tokens",)}
_ALL_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_NUMBERS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
            "frequency_penalty": (-2.0, 2.0)}
_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "seed": (int, "an integer"), "user": (str, "a string"), "metadata": (dict, "an object"),
    "logit_bias": (dict, "an object"), "tools": (list, "a list"), "tool_choice": ((str, dict), "a string or object"),
    "response_format": (dict, "an object"), "parallel_tool_calls": (bool, "a boolean"),
    "echo": (bool, "a boolean"), "suffix": (str, "a string"), "instructions": (str, "a string"),
    "reasoning_effort": (str, "a string"), "reasoning": (dict, "an object"), "top_logprobs": (int, "an integer"),
}


@dataclass(frozen=True)
class Checked:
    stream: bool
    choices: int  # answers the upstream generates (n, or best_of for text completions)
    max_output: int | None  # the endpoint's own output limit, None when the request sets none


def _bad(field: str, message: str, code: str = "invalid_type") -> Reject:
    return Reject(400, message, "invalid_request_error", code, param=field)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance`` where a boolean is not an integer (JSON ``true`` is not ``1``)."""
    if isinstance(value, bool):
        return kind is bool or (isinstance(kind, tuple) and bool in kind)
    return isinstance(value, kind)


def _expect(body: dict[str, Any], field: str, kind: type | tuple[type, ...], what: str) -> None:
    value = body.get(field)
    if value is not None and not _is(value, kind):
        raise _bad(field, f"Invalid type for '{field}': expected {what}, got {_type_name(value)}.")


def _integer(body: dict[str, Any], field: str, low: int, high: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not _is(value, int):
        raise _bad(field, f"Invalid type for '{field}': expected an integer, got {_type_name(value)}.")
    if not low <= value <= high:
        raise _bad(field, f"'{field}' must be between {low} and {high}.", "invalid_value")
    return int(value)


def _number(body: dict[str, Any], field: str, low: float, high: float) -> None:
    value = body.get(field)
    if value is None:
        return
    if not _is(value, (int, float)):
        raise _bad(field, f"Invalid type for '{field}': expected a number, got {_type_name(value)}.")
    if not low <= value <= high:
        raise _bad(field, f"'{field}' must be between {low:g} and {high:g}.", "invalid_value")


def _content(value: Any, field: str, nullable: bool) -> None:
    """A message content: a string, a list of typed parts, or (``nullable``) null."""
    if value is None and nullable:
        return
    if isinstance(value, str):
        return
    if isinstance(value, list):
        for i, part in enumerate(value):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _bad(f"{field}[{i}]", f"'{field}[{i}]' must be an object with a string 'type'.")
            if "text" in part and not isinstance(part["text"], str):
                raise _bad(f"{field}[{i}].text", f"Invalid type for '{field}[{i}].text': expected a string.")
        return
    raise _bad(field, f"Invalid type for '{field}': expected a string or a list of parts, got {_type_name(value)}.")


def _messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _bad("messages", "'messages' must be a list of messages.")
    if not messages:
        raise _bad("messages", "'messages' must not be empty.", "invalid_value")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(where, f"'{where}' must be an object.")
        if m.get("role") not in ROLES:
            raise _bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(ROLES)}.", "invalid_value")
        _content(m.get("content"), f"{where}.content", nullable=m.get("role") == "assistant")


def _prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return
    raise _bad("prompt", "'prompt' must be a string or a non-empty list of strings.")


def _input(body: dict[str, Any]) -> None:
    value = body.get("input")
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise _bad("input", "'input' must be a string or a non-empty list of input items.")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(f"input[{i}]", f"'input[{i}]' must be an object.")
        if "role" in item and item["role"] not in ROLES:
            raise _bad(f"input[{i}].role", f"'input[{i}].role' must be one of {', '.join(ROLES)}.", "invalid_value")
        if "content" in item:
            _content(item["content"], f"input[{i}].content", nullable=False)


def check_request(endpoint: str, body: dict[str, Any], *, max_output_tokens: int, max_n: int) -> Checked:
    """Check ``body`` for ``endpoint``; raise ``Reject`` (400) naming the first bad field."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 256:
        raise _bad("model", "'model' must be a non-empty string (at most 256 characters)." if "model" in body
                   else "'model' is required.", "invalid_type" if "model" in body else "missing_required_parameter")
    {CHAT: _messages, COMPLETIONS: _prompt, RESPONSES: _input}[endpoint](body)
    _expect(body, "stream", bool, "a boolean")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("stream_options", f"Invalid type for 'stream_options': expected an object, "
                                         f"got {_type_name(options)}.")
        _expect(options, "include_usage", bool, "a boolean")
    for field, (low, high) in _NUMBERS.items():
        _number(body, field, low, high)
    for field, (kind, what) in _TYPES.items():
        _expect(body, field, kind, what)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        raise _bad("stop", "'stop' must be a string or a list of at most 4 strings.")
    logprobs = body.get("logprobs")
    if endpoint == COMPLETIONS:
        _integer(body, "logprobs", 0, 5)
    elif logprobs is not None and not isinstance(logprobs, bool):
        raise _bad("logprobs", f"Invalid type for 'logprobs': expected a boolean, got {_type_name(logprobs)}.")
    _integer(body, "top_logprobs", 0, 20)
    for field in _ALL_LIMITS:
        if field in body and field not in LIMIT_FIELDS[endpoint]:
            raise _bad(field, f"'{field}' is not a parameter of {endpoint}; use "
                              f"'{LIMIT_FIELDS[endpoint][-1]}'.", "unknown_parameter")
    low = 0 if endpoint == COMPLETIONS else 1
    limits = [v for f in LIMIT_FIELDS[endpoint] if (v := _integer(body, f, low, max_output_tokens)) is not None]
    choices = _integer(body, "n", 1, max_n) or 1
    if endpoint == COMPLETIONS:
        choices = max(choices, _integer(body, "best_of", 1, max_n) or 1)
    elif "best_of" in body:
        raise _bad("best_of", f"'best_of' is not a parameter of {endpoint}.", "unknown_parameter")
    if endpoint == RESPONSES and "n" in body:
        raise _bad("n", "'n' is not a parameter of /v1/responses.", "unknown_parameter")
    return Checked(bool(body.get("stream")), choices, max(limits) if limits else None)
