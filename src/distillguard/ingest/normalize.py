"""Normalize request bodies to the OpenAI Chat Completions shape.

Three shapes are accepted (see the exchange-log spec): Chat Completions
(``messages``), OpenAI Responses (``input``, ``instructions``) and Anthropic
Messages (top-level ``system``, content blocks). Unknown keys are kept.

>>> req, fmt = normalize_request({"model": "m", "instructions": "Be brief.", "input": "Hi"})
>>> fmt, [m["role"] for m in req["messages"]]
('responses', ['system', 'user'])
>>> normalize_request({"system": "S", "messages": [{"role": "user", "content": [
...     {"type": "text", "text": "Hello"}]}], "max_tokens": 5})[1]
'anthropic'
"""

from __future__ import annotations

from typing import Any

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
ANTHROPIC_BLOCKS = frozenset({"image", "tool_use", "tool_result", "document", "thinking"})
"""Content block types that make a request Anthropic-shaped."""
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
"""Content part types counted as images."""


class RowProblem(ValueError):
    """A row cannot be used; the message is the quarantine reason."""


def normalize_request(req: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the request in chat shape and the name of the shape it came in."""
    if "messages" not in req and ("input" in req or "instructions" in req):
        return _from_responses(req), "responses"
    if "messages" not in req:
        raise RowProblem("missing required field 'request.messages'")
    if not isinstance(req["messages"], list):
        raise RowProblem(f"'request.messages' must be a list, got {kind_of(req['messages'])}")
    if "system" in req or _has_anthropic_blocks(req["messages"]):
        return _from_anthropic(req), "anthropic"
    out = dict(req)
    out["messages"] = [_chat_message(m, i) for i, m in enumerate(req["messages"])]
    return out, "chat"


def _chat_message(m: Any, i: int) -> dict[str, Any]:
    where = f"request.messages[{i}]"
    if not isinstance(m, dict):
        raise RowProblem(f"'{where}' must be an object, got {kind_of(m)}")
    role = m.get("role")
    if role not in ROLES:
        raise RowProblem(f"'{where}.role' is {role!r}, not one of {sorted(ROLES)}")
    content = m.get("content")
    if content is not None and not isinstance(content, str | list):
        raise RowProblem(f"'{where}.content' must be a string or a list, got {kind_of(content)}")
    return m


def _has_anthropic_blocks(messages: list[Any]) -> bool:
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") in ANTHROPIC_BLOCKS:
                    return True
    return False


def _from_anthropic(req: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in req.items() if k not in ("system", "messages")}
    messages: list[dict[str, Any]] = []
    system = req.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _blocks_to_text(system, "request.system")})
    for i, m in enumerate(req["messages"]):
        m = _chat_message(m, i)
        content = m.get("content")
        if isinstance(content, list):
            content = [_anthropic_part(b, f"request.messages[{i}].content") for b in content]
        messages.append({**m, "content": content})
    out["messages"] = messages
    return out


def _anthropic_part(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise RowProblem(f"'{where}' blocks must be objects, got {kind_of(block)}")
    kind = block.get("type")
    if kind == "image":
        source = block.get("source") or {}
        url = source.get("url") if isinstance(source, dict) else None
        return {"type": "image_url", "image_url": {"url": url or "data:anthropic-image"}}
    if kind == "tool_use":
        return {"type": "text", "text": f"[tool_use {block.get('name', '')}]"}
    if kind == "tool_result":
        inner = block.get("content")
        return {"type": "text", "text": _blocks_to_text(inner, where) if inner else ""}
    return {"type": "text", "text": str(block.get("text") or block.get("thinking") or "")}


def _from_responses(req: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in req.items() if k not in ("input", "instructions", "max_output_tokens")}
    if "max_output_tokens" in req:
        out["max_tokens"] = req["max_output_tokens"]
    messages: list[dict[str, Any]] = []
    if req.get("instructions") is not None:
        messages.append({"role": "system", "content": _blocks_to_text(req["instructions"], "request.instructions")})
    items = req.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for i, item in enumerate(items):
            messages.append(_responses_item(item, f"request.input[{i}]"))
    elif items is not None:
        raise RowProblem(f"'request.input' must be a string or a list, got {kind_of(items)}")
    out["messages"] = messages
    return out


def _responses_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise RowProblem(f"'{where}' must be an object, got {kind_of(item)}")
    kind = item.get("type", "message")
    if kind == "function_call_output":
        return {"role": "tool", "content": str(item.get("output", ""))}
    if kind == "function_call":
        return {"role": "assistant", "content": f"[function_call {item.get('name', '')}]"}
    role = item.get("role", "user")
    if role not in ROLES:
        raise RowProblem(f"'{where}.role' is {role!r}, not one of {sorted(ROLES)}")
    content = item.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "input_image":
                parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
            elif isinstance(part, dict):
                parts.append({"type": "text", "text": str(part.get("text", ""))})
        content = parts
    return {"role": role, "content": content}


def _blocks_to_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(b.get("text", "")) for b in value if isinstance(b, dict))
    raise RowProblem(f"'{where}' must be a string or a list of text blocks, got {kind_of(value)}")


def content_text(content: Any) -> tuple[str, int]:
    """Text of a message content and its number of image parts.

    >>> content_text([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}])
    ('a', 1)
    """
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in IMAGE_PARTS:
            images += 1
        elif part.get("text") is not None:
            texts.append(str(part["text"]))
    return "\n".join(texts), images


def prompt_parts(messages: list[dict[str, Any]]) -> tuple[str | None, str, int, int]:
    """(system text or None, last user text, user turns, image parts) of chat-shaped messages.

    >>> prompt_parts([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])
    ('S', 'hi', 1, 0)
    """
    system_parts, last_user, n_user, n_images = [], "", 0, 0
    for m in messages:
        text, images = content_text(m.get("content"))
        n_images += images
        if m["role"] in ("system", "developer"):
            system_parts.append(text)
        elif m["role"] == "user":
            n_user += 1
            last_user = text
    return ("\n".join(system_parts) if system_parts else None), last_user, n_user, n_images


def kind_of(value: Any) -> str:
    """JSON name of a value's type, for error messages."""
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )

