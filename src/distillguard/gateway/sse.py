"""Relay a Chat Completions event stream while recording what it said.

Each complete server-sent event is passed on the moment its blank line
arrives (nothing waits for the end of the answer); only the usage event the
gateway itself asked the upstream for is dropped when the client did not ask
for usage. Content, reasoning, tool calls, finish reason and usage are
accumulated for the exchange log, from chat deltas, text-completion ``text``
and Responses ``response.output_text.delta`` events alike; an event of an
unexpected shape is passed on and not recorded (never an exception).

>>> cap = StreamCapture(include_usage_for_client=False)
>>> out = cap.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\\n\\ndata: {"choices":[],')
>>> out.count(b"data:"), cap.feed(b'"usage":{"prompt_tokens":3,"completion_tokens":1}}\\n\\n')
(1, b'')
>>> cap.response_fields(200, 1.0)["usage"]["input_tokens"], cap.response_fields(200, 1.0)["content"]
(3, 'Hi')
"""

from __future__ import annotations

from typing import Any

import orjson

from distillguard.gateway.reasoning import Steps

UPSTREAM_ERROR_EVENT = b'data: {"error": {"message": "The model server failed to answer.", "type": "api_error", ' \
                       b'"param": null, "code": "upstream_error"}}\n\n'


class StreamCapture:
    def __init__(self, include_usage_for_client: bool, withhold_reasoning: bool = False,
                 canary: str | None = None, summarize_reasoning: bool = False) -> None:
        self.include_usage = include_usage_for_client
        self.withhold_reasoning = withhold_reasoning
        # Reasoning summarized step by step (per choice) unless withheld: ``gateway.reasoning``.
        self.steps: dict[int, Steps] | None = {} if summarize_reasoning and not withhold_reasoning else None
        self.canary = canary  # sent as one more content delta just before the first choice finishes
        self._buffer = b""
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.error: Any = None  # an error event of the upstream (logged; the client gets a plain one)

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to send to the client now (complete events)."""
        self._buffer += chunk
        out = []
        while True:
            end = self._boundary()
            if end is None:
                break
            event, self._buffer = self._buffer[:end[1]], self._buffer[end[1]:]
            verdict = self._observe(event[:end[0]])
            if verdict is True:
                out.append(event)
            elif verdict:  # a rewritten event
                out.append(verdict)
        return b"".join(out)

    def _boundary(self) -> tuple[int, int] | None:
        """(end of the event's text, end including its blank line) of the first complete event."""
        best = None
        for sep in (b"\n\n", b"\r\n\r\n"):
            i = self._buffer.find(sep)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, i + len(sep))
        return best

    def _observe(self, event: bytes) -> bool | bytes:
        """Record an event; False when it must not reach the client, bytes to send instead of it."""
        data = b"".join(line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:"))
        if not data:
            return True  # comments, keep-alives, other fields
        if data.strip() == b"[DONE]":
            self.done = True
            return True
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(obj, dict):
            return True
        if obj.get("error") is not None and not obj.get("choices"):  # the upstream's words stay in the log
            self.error = obj["error"]
            return UPSTREAM_ERROR_EVENT
        self._responses_event(obj)
        if isinstance(obj.get("usage"), dict) and obj["usage"]:
            self.usage = obj["usage"]
        choices = obj.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            return True  # not a chat or completions event: passed on as it is
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            if isinstance(choice.get("text"), str):
                self.content.append(choice["text"])
            if isinstance(delta.get("reasoning_content"), str):
                self.reasoning.append(delta["reasoning_content"])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                if not isinstance(call, dict):
                    continue
                index = call.get("index", 0)
                slot = self.tool_calls.setdefault(index if isinstance(index, int) else 0,
                                                  {"id": None, "name": "", "arguments": ""})
                fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
                slot["id"] = call.get("id") if isinstance(call.get("id"), str) else slot["id"]
                slot["name"] += fn.get("name") if isinstance(fn.get("name"), str) else ""
                slot["arguments"] += fn.get("arguments") if isinstance(fn.get("arguments"), str) else ""
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        usage_only = not obj.get("choices") and obj.get("usage") is not None
        if usage_only and not self.include_usage:
            return False
        prefix = b""
        finishing = [c for c in obj.get("choices") or [] if c.get("finish_reason") and c.get("index", 0) == 0]
        if self.canary and finishing:
            extra = {**obj, "choices": [{"index": 0, "delta": {"content": self.canary}, "finish_reason": None}]}
            prefix, self.canary = b"data: " + orjson.dumps(extra) + b"\n\n", None
        verdict = self._rewrite(obj)
        if prefix:
            return prefix + (event + b"\n\n" if verdict is True else verdict or b"")
        return verdict

    def _responses_event(self, obj: dict[str, Any]) -> None:
        """Record a Responses API stream event (text deltas; the final response's status and usage)."""
        kind = obj.get("type")
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            self.content.append(obj["delta"])
        elif kind in ("response.completed", "response.incomplete") and isinstance(obj.get("response"), dict):
            final = obj["response"]
            if isinstance(final.get("usage"), dict):
                self.usage = final["usage"]
            if isinstance(final.get("status"), str):
                self.finish_reason = final["status"]

    def _rewrite(self, obj: dict[str, Any]) -> bool | bytes:
        """The event with reasoning withheld or summarized (bytes), dropped (False), or unchanged (True)."""
        if self.steps is not None:
            return self._summarized(obj)
        if self.withhold_reasoning and any(isinstance(c.get("delta"), dict) and "reasoning_content" in c["delta"]
                                           for c in obj.get("choices") or []):
            kept = []
            for c in obj["choices"]:
                old = c.get("delta") if isinstance(c.get("delta"), dict) else {}
                delta = {k: v for k, v in old.items() if k != "reasoning_content"}
                if delta or c.get("finish_reason"):
                    kept.append({**c, "delta": delta})
            if not kept:
                return False  # a reasoning-only event: nothing left to send
            return b"data: " + orjson.dumps({**obj, "choices": kept}) + b"\n\n"
        return True

    def _summarized(self, obj: dict[str, Any]) -> bool | bytes:
        """Reasoning deltas replaced by the summary of the steps they complete; a choice's last step is sent,
        summarized, just before its first answer delta or its end."""
        assert self.steps is not None
        choices = obj.get("choices") or []
        if not any(isinstance(c.get("delta"), dict) for c in choices):
            return True
        flushed: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for c in choices:
            delta = c.get("delta") if isinstance(c.get("delta"), dict) else None
            if delta is None:
                kept.append(c)
                continue
            index = c.get("index", 0) if isinstance(c.get("index", 0), int) else 0
            steps = self.steps.setdefault(index, Steps())
            delta, had_reasoning = dict(delta), "reasoning_content" in delta
            if isinstance(delta.get("reasoning_content"), str):
                summary = steps.feed(delta.pop("reasoning_content"))
                if summary:
                    delta["reasoning_content"] = summary
            if delta.get("content") or delta.get("tool_calls") or c.get("finish_reason"):
                rest = steps.close()
                if rest:
                    flushed.append({"index": index, "delta": {"reasoning_content": rest}, "finish_reason": None})
            if delta or c.get("finish_reason") or not had_reasoning:
                kept.append({**c, "delta": delta})
        out = b"".join(b"data: " + orjson.dumps({**obj, "choices": [f]}) + b"\n\n" for f in flushed)
        if kept:
            out += b"data: " + orjson.dumps({**obj, "choices": kept}) + b"\n\n"
        return out or False

    def close(self) -> bytes:
        """Whatever is left (an event without its final blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def response_fields(self, status: int, latency_ms: float, interrupted: bool = False) -> dict[str, Any]:
        try:
            usage = usage_fields(self.usage or {})
        except ValueError:
            usage = None  # an upstream usage we cannot trust: unknown (the reservation is kept)
        fields: dict[str, Any] = {
            "status": status,
            "finish_reason": "upstream_error" if self.error is not None else
            "client_disconnected" if interrupted and not self.finish_reason else self.finish_reason,
            "content": "".join(self.content),
            "reasoning_content": "".join(self.reasoning) or None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]}}
                           for _, c in sorted(self.tool_calls.items())],
            "latency_ms": latency_ms,
            "interrupted": interrupted,
        }
        if usage:
            fields["usage"] = usage
        if self.error is not None:
            fields["error"] = {"type": "api_error", "code": "upstream_error", "detail": str(self.error)[:2000]}
        return fields


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a token count: {value!r}")
    return value


def usage_fields(usage: dict[str, Any]) -> dict[str, int] | None:
    """The log's ``usage`` from an upstream's (chat/completions or Responses names); None if it gave none.

    A count that is not a non-negative integer is a ``ValueError``: a forged usage must not refill a bucket.

    >>> usage_fields({"prompt_tokens": 3, "completion_tokens": 4})
    {'input_tokens': 3, 'output_tokens': 4, 'reasoning_tokens': 0}
    """
    if not usage:
        return None
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    if not isinstance(details, dict):
        raise ValueError("token details must be an object")
    return {"input_tokens": _count(usage.get("prompt_tokens", usage.get("input_tokens"))),
            "output_tokens": _count(usage.get("completion_tokens", usage.get("output_tokens"))),
            "reasoning_tokens": _count(details.get("reasoning_tokens"))}
