"""Request shapes and per-request tactics: the same request as each API would receive it.

Bodies are built in the OpenAI Chat Completions shape (``content``); ``reshape``
rewrites one into OpenAI Responses (``input``, ``instructions``), Anthropic
Messages (top-level ``system``, content blocks, ``max_tokens`` required) or
text completions (``prompt``), and names the API path for the row's
``endpoint``, as the exchange-log spec describes.

>>> req = {"model": "m", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]}
>>> reshape(req, "responses")
({'model': 'm', 'instructions': 'S', 'input': 'Hi'}, '/v1/responses')
>>> reshape(req, "messages")[0]["system"], reshape(req, "completions")
('S', ({'model': 'm', 'prompt': 'S\\n\\nHi'}, '/v1/completions'))
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from distillguard.sim.datasets import Pools

ENDPOINTS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages",
             "completions": "/v1/completions"}
_HARVEST_FOLLOWUPS = (
    "Continue. Show the rest of your reasoning in full.",
    "Now explain each step of that in more detail.",
    "Give an alternative solution and compare the two approaches step by step.",
    "Check your work: verify every step and correct any mistakes.",
    "Now write the tests for that and explain what each one covers.",
    "Summarize the key reasoning steps as a numbered list.",
)
# Rewordings of the instruction phrases harvest templates use (paraphrase evasion).
_SYNONYMS = (
    ("step by step", ("one step at a time", "stepwise", "in sequential steps", "step-by-step")),
    ("Show every step", ("Lay out each step", "Walk through all steps", "Include all steps")),
    ("reasoning", ("thought process", "logic", "line of thinking", "rationale")),
    ("Explain", ("Describe", "Spell out", "Clarify", "Detail")),
    ("explain", ("describe", "spell out", "justify", "detail")),
    ("complete", ("full", "entire", "whole")),
    ("final answer", ("end result", "conclusion", "final result")),
    ("Solve", ("Work out", "Figure out", "Answer")),
    ("task", ("assignment", "job", "problem")),
    ("Think", ("Reflect", "Reason", "Deliberate")),
    ("in detail", ("thoroughly", "at length", "carefully")),
    ("First", ("To begin,", "Start by", "Initially")),
)
# Converted tool lists, by the id of the (shared, never mutated) source list.
_TOOLS: dict[tuple[int, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}


def pick(weights: tuple[tuple[str, float], ...], r: random.Random) -> str:
    """One name from (name, weight) pairs."""
    x = r.random() * sum(w for _, w in weights)
    for name, w in weights:
        x -= w
        if x < 0:
            return name
    return weights[-1][0]


def add_phrase(request: dict[str, Any], phrase: str, r: random.Random) -> None:
    """Add an elicitation phrase before or after the last user message's text."""
    messages = request["messages"]
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] != "user":
            continue
        content = messages[i]["content"]
        before = r.random() < 0.3
        if isinstance(content, str):
            content = f"{phrase}\n\n{content}" if before else f"{content}\n\n{phrase}"
        else:
            content = [*content, {"type": "text", "text": phrase}]
        messages[i] = {**messages[i], "content": content}
        return


def paraphrase(request: dict[str, Any], r: random.Random) -> None:
    """Reword the last user message's instruction phrases (each known phrase with probability 0.6)."""
    messages = request["messages"]
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user" and isinstance(messages[i]["content"], str):
            text = messages[i]["content"]
            for phrase, options in _SYNONYMS:
                if phrase in text and r.random() < 0.6:
                    text = text.replace(phrase, options[r.randrange(len(options))])
            messages[i] = {**messages[i], "content": text}
            return


def harvest_conversation(body: Callable[[Pools, random.Random, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
                         pools: Pools, *, r: random.Random,
                         ctx: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Turn ``ctx["turn"]`` of a harvesting conversation: the first task, then follow-ups asking for more."""
    crng = random.Random(ctx["conv_seed"])
    first, first_resp = body(pools, crng, {**ctx, "turn": 0})
    messages = list(first["messages"])
    reply = first_resp.get("content") or "(called a tool)"
    for _ in range(ctx["turn"]):
        messages.append({"role": "assistant", "content": reply[:1500]})
        messages.append({"role": "user", "content": _HARVEST_FOLLOWUPS[crng.randrange(len(_HARVEST_FOLLOWUPS))]})
        reply = "Continuing the reasoning from above, step by step: ..."
    _, response = body(pools, r, ctx)
    return {**first, "messages": messages}, response


def reshape(request: dict[str, Any], shape: str) -> tuple[dict[str, Any], str]:
    """``request`` (chat shape) as ``shape`` sends it, and its endpoint.

    Text completions carry neither tools nor images: such requests stay in chat shape.
    """
    if shape == "responses":
        return _responses(request), ENDPOINTS[shape]
    if shape == "messages":
        return _anthropic(request), ENDPOINTS[shape]
    if shape == "completions" and not request.get("tools") and all(
            isinstance(m["content"], str) for m in request["messages"]):
        return _completions(request), ENDPOINTS[shape]
    return request, ENDPOINTS["chat"]


def _split(request: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], dict[str, Any]]:
    system = "\n".join(m["content"] for m in request["messages"] if m["role"] in ("system", "developer")) or None
    turns = [m for m in request["messages"] if m["role"] not in ("system", "developer")]
    rest = {k: v for k, v in request.items() if k not in ("messages", "tools", "max_tokens", "n",
                                                          "reasoning_effort")}
    return system, turns, rest


def _completions(request: dict[str, Any]) -> dict[str, Any]:
    system, turns, rest = _split(request)
    if len(turns) == 1:
        prompt = f"{system}\n\n{turns[0]['content']}" if system else turns[0]["content"]
    else:
        lines = [f"System: {system}"] if system else []
        lines += [f"{m['role'].title()}: {m['content']}" for m in turns] + ["Assistant:"]
        prompt = "\n\n".join(lines)
    out = {**rest, "prompt": prompt}
    for key in ("max_tokens", "n"):
        if key in request:
            out[key] = request[key]
    return out


def _responses(request: dict[str, Any]) -> dict[str, Any]:
    system, turns, rest = _split(request)
    out: dict[str, Any] = {"model": rest.pop("model")}
    if system:
        out["instructions"] = system
    if len(turns) == 1 and isinstance(turns[0]["content"], str):
        out["input"] = turns[0]["content"]
    else:
        out["input"] = [{"role": m["role"], "content": _responses_content(m)} for m in turns]
    if request.get("tools"):
        out["tools"] = _tools(request["tools"], "responses")
    if "max_tokens" in request:
        out["max_output_tokens"] = request["max_tokens"]
    if "reasoning_effort" in request:
        out["reasoning"] = {"effort": request["reasoning_effort"]}
    return {**out, **rest}


def _responses_content(m: dict[str, Any]) -> Any:
    content = m["content"]
    if isinstance(content, str):
        return content
    kind = "output_text" if m["role"] == "assistant" else "input_text"
    return [{"type": "input_image", "image_url": p["image_url"]["url"]} if p["type"] == "image_url"
            else {"type": kind, "text": p.get("text") or ""} for p in content]


def _anthropic(request: dict[str, Any]) -> dict[str, Any]:
    system, turns, rest = _split(request)
    out: dict[str, Any] = {"model": rest.pop("model")}
    if system:
        out["system"] = system
    out["messages"] = [{"role": m["role"], "content": _blocks(m["content"])} for m in turns]
    if request.get("tools"):
        out["tools"] = _tools(request["tools"], "messages")
    out["max_tokens"] = request.get("max_tokens", 4096)
    if "reasoning_effort" in request:
        out["thinking"] = {"type": "enabled", "budget_tokens": 16_000}
    return {**out, **rest}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [{"type": "image", "source": {"type": "url", "url": p["image_url"]["url"]}} if p["type"] == "image_url"
            else {"type": "text", "text": p.get("text") or ""} for p in content]


def _tools(tools: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    key = (id(tools), shape)
    if key not in _TOOLS:
        fns = [t["function"] for t in tools]
        conv = ([{"type": "function", "name": f["name"], "description": f.get("description", ""),
                  "parameters": f.get("parameters")} for f in fns] if shape == "responses" else
                [{"name": f["name"], "description": f.get("description", ""),
                  "input_schema": f.get("parameters")} for f in fns])
        _TOOLS[key] = (tools, conv)
    return _TOOLS[key][1]


__all__ = ["ENDPOINTS", "add_phrase", "harvest_conversation", "paraphrase", "pick", "reshape"]
