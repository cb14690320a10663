"""Normalize request bodies to the OpenAI Chat Completions shape, never failing on them.

Four shapes are read (see the exchange-log spec): Chat Completions
(``messages``), OpenAI Responses (``input``, ``instructions``), Anthropic
Messages (top-level ``system``, content blocks) and text completions
(``prompt``: each prompt string one user message). Unknown keys are kept.

A request body is what the client sent: a refused or odd one is still activity
of its account, so nothing in it makes a row unusable. What cannot be read is
left out of the chat-shaped messages and named in ``notes`` (the row keeps it).

>>> r = read_request({"model": "m", "instructions": "Be brief.", "input": "Hi"})
>>> r.format, [m["role"] for m in r.messages], r.notes
('responses', ['system', 'user'], [])
>>> read_request({"system": "S", "messages": [{"role": "user", "content": [
...     {"type": "text", "text": "Hello"}]}], "max_tokens": 5}).format
'anthropic'
>>> r = read_request({"prompt": ["a", "b"]})
>>> r.format, [m["content"] for m in r.messages]
('completions', ['a', 'b'])
>>> read_request({"messages": "hi"}).notes
["'request.messages' must be a list, got string: not read"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
ANTHROPIC_BLOCKS = frozenset({"image", "tool_use", "tool_result", "document", "thinking"})
"""Content block types that make a request Anthropic-shaped."""
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
"""Content part types counted as images."""
MAX_NOTES = 8
"""Problems named per row; more are counted."""


class RowProblem(ValueError):
    """A row cannot be used; the message is the quarantine reason."""


class Notes(list[str]):
    """What ingest could not read in a row (kept in the row's ``extra_json``), at most ``MAX_NOTES``."""

    dropped = 0

    def add(self, note: str) -> None:
        if len(self) < MAX_NOTES:
            self.append(note)
        else:
            self.dropped += 1

    def final(self) -> list[str]:
        return [*self, f"and {self.dropped} more problems"] if self.dropped else list(self)


@dataclass
class ReadRequest:
    """A request in chat shape: ``request`` (for ``request_json``), its ``messages``, its shape, notes."""

    request: Any
    messages: list[Any]
    format: str | None  # chat | responses | anthropic | completions; None: no shape recognized
    notes: Notes = field(default_factory=Notes)


def read_request(req: Any) -> ReadRequest:
    """The request in chat shape and the name of the shape it came in; problems go to ``notes``."""
    notes = Notes()
    if not isinstance(req, dict):
        notes.add(f"'request' must be an object, got {kind_of(req)}: not read")
        return ReadRequest(req, [], None, notes)
    if req.get("messages") is not None:
        messages = req["messages"]
        if not isinstance(messages, list):
            notes.add(f"'request.messages' must be a list, got {kind_of(messages)}: not read")
            return ReadRequest(req, [], None, notes)
        if req.get("system") is not None or _has_anthropic_blocks(messages):
            out = _from_anthropic(req, messages, notes)
            return ReadRequest(out, out["messages"], "anthropic", notes)
        for i, m in enumerate(messages):
            _check_message(m, f"request.messages[{i}]", notes)
        return ReadRequest(req, messages, "chat", notes)
    if req.get("input") is not None or req.get("instructions") is not None:
        out = _from_responses(req, notes)
        return ReadRequest(out, out["messages"], "responses", notes)
    if req.get("prompt") is not None:
        out = _from_completions(req, notes)
        return ReadRequest(out, out["messages"], "completions", notes)
    if any(v is not None for v in req.values()):
        notes.add("'request' has no 'messages', 'input' or 'prompt': no message read")
    return ReadRequest(req, [], None, notes)


def normalize_request(req: Any) -> tuple[dict[str, Any], str]:
    """``read_request`` as (chat-shaped request with ``messages``, shape name or ``''``); never raises."""
    r = read_request(req)
    out = dict(r.request) if isinstance(r.request, dict) else {}
    out["messages"] = r.messages
    return out, r.format or ""


def _check_message(m: Any, where: str, notes: Notes) -> None:
    if not isinstance(m, dict):
        notes.add(f"'{where}' must be an object, got {kind_of(m)}: not read")
        return
    role = m.get("role")
    if not _one_of(role, ROLES):
        notes.add(f"'{where}.role' is {_short(role)}, not one of {sorted(ROLES)}")
    content = m.get("content")
    if content is not None and not isinstance(content, str | list):
        notes.add(f"'{where}.content' must be a string or a list, got {kind_of(content)}: not read")


def _has_anthropic_blocks(messages: list[Any]) -> bool:
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and _one_of(block.get("type"), ANTHROPIC_BLOCKS):
                    return True
    return False


def _from_anthropic(req: dict[str, Any], source: list[Any], notes: Notes) -> dict[str, Any]:
    out = {k: v for k, v in req.items() if k not in ("system", "messages")}
    messages: list[Any] = []
    system = req.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _blocks_to_text(system, "request.system", notes)})
    for i, m in enumerate(source):
        where = f"request.messages[{i}]"
        _check_message(m, where, notes)
        if not isinstance(m, dict):
            messages.append(m)
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = [_anthropic_part(b, f"{where}.content[{j}]", notes) for j, b in enumerate(content)]
        messages.append({**m, "content": content})
    out["messages"] = messages
    return out


def _anthropic_part(block: Any, where: str, notes: Notes) -> Any:
    if not isinstance(block, dict):
        notes.add(f"'{where}' must be an object, got {kind_of(block)}: not read")
        return block
    kind = block.get("type")
    if kind == "image":
        source = block.get("source") or {}
        url = source.get("url") if isinstance(source, dict) else None
        return {"type": "image_url", "image_url": {"url": url or "data:anthropic-image"}}
    if kind == "tool_use":
        return {"type": "text", "text": f"[tool_use {_text(block.get('name', ''))}]"}
    if kind == "tool_result":
        inner = block.get("content")
        return {"type": "text", "text": _blocks_to_text(inner, where, notes) if inner else ""}
    return {"type": "text", "text": _text(block.get("text") or block.get("thinking") or "")}


def _from_responses(req: dict[str, Any], notes: Notes) -> dict[str, Any]:
    out = {k: v for k, v in req.items() if k not in ("input", "instructions", "max_output_tokens")}
    if "max_output_tokens" in req:
        out["max_tokens"] = req["max_output_tokens"]
    messages: list[Any] = []
    if req.get("instructions") is not None:
        messages.append({"role": "system",
                         "content": _blocks_to_text(req["instructions"], "request.instructions", notes)})
    items = req.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for i, item in enumerate(items):
            messages.append(_responses_item(item, f"request.input[{i}]", notes))
    elif items is not None:
        notes.add(f"'request.input' must be a string or a list, got {kind_of(items)}: not read")
    out["messages"] = messages
    return out


def _responses_item(item: Any, where: str, notes: Notes) -> Any:
    if isinstance(item, str):  # accepted by some servers as a user turn
        return {"role": "user", "content": item}
    if not isinstance(item, dict):
        notes.add(f"'{where}' must be an object, got {kind_of(item)}: not read")
        return item
    kind = item.get("type", "message")
    if kind == "function_call_output":
        return {"role": "tool", "content": _text(item.get("output", ""))}
    if kind == "function_call":
        return {"role": "assistant", "content": f"[function_call {_text(item.get('name', ''))}]"}
    role = item.get("role", "user")
    if not _one_of(role, ROLES):
        notes.add(f"'{where}.role' is {_short(role)}, not one of {sorted(ROLES)}")
    content = item.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "input_image":
                parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
            elif isinstance(part, dict):
                parts.append({"type": "text", "text": _text(part.get("text", ""))})
        content = parts
    elif content is not None and not isinstance(content, str):
        notes.add(f"'{where}.content' must be a string or a list, got {kind_of(content)}: not read")
        content = None
    return {"role": role, "content": content}


def _from_completions(req: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """``prompt``: a string, a list of strings, or token ids (a list of ints, or lists of them)."""
    out = {k: v for k, v in req.items() if k != "prompt"}
    prompt = req["prompt"]
    prompts: list[Any] = [prompt] if isinstance(prompt, str) or _token_ids(prompt) else \
        prompt if isinstance(prompt, list) else []
    if prompt is not None and not isinstance(prompt, str | list):
        notes.add(f"'request.prompt' must be a string or a list, got {kind_of(prompt)}: not read")
    messages: list[Any] = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            messages.append({"role": "user", "content": p})
        elif _token_ids(p):
            messages.append({"role": "user", "content": None, "token_ids": len(p)})
        else:
            notes.add(f"'request.prompt[{i}]' must be a string or token ids, got {kind_of(p)}: not read")
    out["messages"] = messages
    return out


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(x) is int for x in value)


def _blocks_to_text(value: Any, where: str, notes: Notes) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(b.get("text", "")) for b in value if isinstance(b, dict))
    notes.add(f"'{where}' must be a string or a list of text blocks, got {kind_of(value)}: not read")
    return ""


def _one_of(value: Any, names: frozenset[str]) -> bool:
    """``value in names`` for any JSON value (a list is unhashable)."""
    return isinstance(value, str) and value in names


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)[:10_000]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def content_text(content: Any) -> tuple[str, int]:
    """Text of a message content and its number of image parts (nothing for any other type).

    >>> content_text([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}])
    ('a', 1)
    """
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts, images = [], 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if _one_of(part.get("type"), IMAGE_PARTS):
            images += 1
        elif part.get("text") is not None:
            texts.append(_text(part["text"]))
    return "\n".join(texts), images


def prompt_parts(messages: list[Any]) -> tuple[str | None, str, int, int]:
    """(system text or None, last user text, user turns, image parts) of chat-shaped messages.

    >>> prompt_parts([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])
    ('S', 'hi', 1, 0)
    """
    system_parts, last_user, n_user, n_images = [], "", 0, 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        text, images = content_text(m.get("content"))
        n_images += images
        role = m.get("role")
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "user":
            n_user += 1
            last_user = text
    return ("\n".join(system_parts) if system_parts else None), last_user, n_user, n_images


def kind_of(value: Any) -> str:
    """JSON name of a value's type, for error messages."""
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
