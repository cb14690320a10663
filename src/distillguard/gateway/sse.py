"""Relay a Chat Completions event stream while recording what it said.

Each complete server-sent event is passed on the moment its blank line
arrives (nothing waits for the end of the answer); only the usage event the
gateway itself asked the upstream for is dropped when the client did not ask
for usage. Content, reasoning, tool calls, finish reason and usage are
accumulated for the exchange log.

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


class StreamCapture:
    def __init__(self, include_usage_for_client: bool, withhold_reasoning: bool = False,
                 canary: str | None = None) -> None:
        self.include_usage = include_usage_for_client
        self.withhold_reasoning = withhold_reasoning
        self.canary = canary  # sent as one more content delta just before the first choice finishes
        self._buffer = b""
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

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
        if obj.get("usage"):
            self.usage = obj["usage"]
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content.append(delta["content"])
            if delta.get("reasoning_content"):
                self.reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or []:
                slot = self.tool_calls.setdefault(int(call.get("index", 0)), {"id": None, "name": "", "arguments": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
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

    def _rewrite(self, obj: dict[str, Any]) -> bool | bytes:
        """The event with reasoning withheld (bytes), dropped (False), or unchanged (True)."""
        if self.withhold_reasoning and any("reasoning_content" in (c.get("delta") or {})
                                           for c in obj.get("choices") or []):
            kept = []
            for c in obj["choices"]:
                delta = {k: v for k, v in (c.get("delta") or {}).items() if k != "reasoning_content"}
                if delta or c.get("finish_reason"):
                    kept.append({**c, "delta": delta})
            if not kept:
                return False  # a reasoning-only event: nothing left to send
            return b"data: " + orjson.dumps({**obj, "choices": kept}) + b"\n\n"
        return True

    def close(self) -> bytes:
        """Whatever is left (an event without its final blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def response_fields(self, status: int, latency_ms: float, interrupted: bool = False) -> dict[str, Any]:
        usage = self.usage or {}
        details = usage.get("completion_tokens_details") or {}
        fields: dict[str, Any] = {
            "status": status,
            "finish_reason": "client_disconnected" if interrupted and not self.finish_reason else self.finish_reason,
            "content": "".join(self.content),
            "reasoning_content": "".join(self.reasoning) or None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]}}
                           for _, c in sorted(self.tool_calls.items())],
            "latency_ms": latency_ms,
            "interrupted": interrupted,
        }
        if usage:
            fields["usage"] = {"input_tokens": usage.get("prompt_tokens"),
                               "output_tokens": usage.get("completion_tokens"),
                               "reasoning_tokens": details.get("reasoning_tokens", 0)}
        return fields
