"""The upstream call: forward a checked request, relay or rewrite the answer, log what happened.

An upstream answer is checked before a client sees it: a 200 whose body is
not the endpoint's JSON shape is a 502; an upstream error keeps its status
(5xx become 502) but its text is the gateway's own (4xx messages are passed
on scrubbed of URLs, addresses and paths); the log keeps the upstream's text.
A stream that breaks (reset, timeout) is logged as an upstream error, and the
client gets an error event; a client that hangs up is logged as
``client_disconnected``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.responses import Response

from distillguard.gateway.canary import Canary
from distillguard.gateway.eventstream import EventStream
from distillguard.gateway.exchange import Exchange, used_tokens
from distillguard.gateway.reasoning import summarize
from distillguard.gateway.reject import Reject, scrub
from distillguard.gateway.sse import UPSTREAM_ERROR_EVENT, StreamCapture, usage_fields
from distillguard.gateway.validate import RESPONSES

if TYPE_CHECKING:
    from distillguard.gateway.app import Gateway

log = logging.getLogger(__name__)
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)  # aiohttp's timeouts are TimeoutErrors


@dataclass(frozen=True)
class Call:
    """What to send upstream for one exchange, and how to treat the answer."""

    endpoint: str
    body: dict[str, Any]
    stream: bool
    withhold_reasoning: bool = False
    processors: tuple[dict[str, Any], ...] = ()
    canary: Canary | None = None
    summarize_reasoning: bool = False  # withholding wins when both apply


def upstream_failure(exc: BaseException) -> Reject:
    """The client's answer to an upstream that could not be reached or timed out (its text stays in the log)."""
    if isinstance(exc, TimeoutError):
        return Reject(504, "The model server did not answer in time.", "api_error", "upstream_timeout",
                      detail=repr(exc))
    return Reject(502, "The model server is unavailable.", "api_error", "upstream_error", detail=repr(exc))


async def forward(gw: Gateway, call: Call, ex: Exchange) -> Response:
    """Send ``call`` upstream and answer the client; ``ex`` is logged in every case."""
    assert gw.client is not None
    upstream_body = dict(call.body)
    # Clients never choose the sampling defence: theirs is dropped, the gateway's (if any) is sent.
    upstream_body.pop("logits_processors", None)
    if call.processors:
        upstream_body["logits_processors"] = list(call.processors)
    if call.stream and call.endpoint != RESPONSES:
        upstream_body["stream_options"] = {**(call.body.get("stream_options") or {}), "include_usage": True}
    headers = {**gw.upstream_headers(), "content-type": "application/json",
               "x-request-id": ex.record["exchange_id"]}
    url = f"{gw.upstream}{call.endpoint.removeprefix('/v1')}"
    try:
        resp = await gw.client.post(url, data=orjson.dumps(upstream_body), headers=headers)
        if not call.stream or resp.status != 200:
            try:
                content = await resp.read()
            finally:
                resp.release()
    except UPSTREAM_ERRORS as exc:
        rej = upstream_failure(exc)
        ex.reject(rej, used=None if isinstance(exc, TimeoutError) else 0)  # a timed-out call may have generated
        return rej.response()
    if not call.stream or resp.status != 200:
        return _answer(call, ex, resp.status, content, resp.headers.get("content-type", "application/json"))
    if "text/event-stream" not in resp.headers.get("content-type", ""):  # a 200 that is no stream: not relayed
        try:
            content = await resp.read()
        except UPSTREAM_ERRORS:
            content = b""
        finally:
            resp.release()
        rej = Reject(502, "The model server sent an answer the gateway cannot read.", "api_error",
                     "upstream_invalid_response", detail=scrub(content[:300].decode("utf-8", "replace")))
        ex.reject(rej, used=None)
        return rej.response()
    capture = StreamCapture(include_usage_for_client=bool((call.body.get("stream_options") or {})
                                                          .get("include_usage")),
                            withhold_reasoning=call.withhold_reasoning,
                            canary=call.canary.text if call.canary else None,
                            summarize_reasoning=call.summarize_reasoning)
    # on_close: a relay that never ran (the client left before it began) ends the stream all the same.
    return EventStream(_relay(gw, resp, capture, ex), headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
                       on_close=lambda: None if ex.logged else _end_stream(resp, capture, ex))


def _end_stream(resp: aiohttp.ClientResponse, capture: StreamCapture, ex: Exchange, *, finished: bool = False,
                fault: Reject | None = None) -> None:
    """Release the upstream call (close it, which cancels it, unless ``finished``) and log the stream:
    completed, interrupted (the client left) or failed (``fault``)."""
    if finished:
        resp.release()  # the connection goes back to the pool
    else:
        resp.close()
    fields = capture.response_fields(200, ex.latency_ms(), interrupted=not finished)
    if fault is not None:
        fields.update(finish_reason="error" if fault.code == "internal_error" else "upstream_error",
                      error=fault.log_error())
    ex.finish(fields, used_tokens(fields.get("usage")))


def _answer(call: Call, ex: Exchange, status: int, content: bytes, content_type: str) -> Response:
    """A whole (non-streamed) upstream answer, checked, logged and passed on."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None
    if status >= 400:
        return _upstream_error(ex, status, data, content)
    fields = (response_fields(call.endpoint, data, status=status, latency_ms=ex.latency_ms())
              if isinstance(data, dict) else None)
    if fields is None:
        rej = Reject(502, "The model server sent an answer the gateway cannot read.", "api_error",
                     "upstream_invalid_response", detail=scrub(content[:300].decode("utf-8", "replace")))
        ex.reject(rej, used=None)  # the upstream may have generated: keep the reservation
        return rej.response()
    ex.finish(fields, used_tokens(fields.get("usage")))
    if status == 200 and (call.withhold_reasoning or call.summarize_reasoning or call.canary):
        content = _rewritten(data, call.withhold_reasoning, call.canary, summarized=call.summarize_reasoning)
    return Response(content, status, media_type=content_type if "json" in content_type else "application/json")


def _upstream_error(ex: Exchange, status: int, data: Any, content: bytes) -> Response:
    """An upstream error, in the gateway's words (4xx text passed on scrubbed; 5xx become a plain 502)."""
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    detail = message if isinstance(message, str) else content[:300].decode("utf-8", "replace")
    if status >= 500:
        rej = Reject(502, "The model server failed to answer.", "api_error", "upstream_error", detail=detail)
    else:
        code = error.get("code")
        rej = Reject(status, scrub(detail) or f"The model server refused the request ({status}).",
                     error["type"] if isinstance(error.get("type"), str) else "invalid_request_error",
                     code if isinstance(code, str) else None,
                     param=error["param"] if isinstance(error.get("param"), str) else None, detail=detail)
    ex.record.setdefault("gateway", {})["upstream_status"] = status
    ex.reject(rej)
    return rej.response()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def response_fields(endpoint: str, data: dict[str, Any], *, status: int, latency_ms: float) -> dict[str, Any] | None:
    """The log's ``response`` object from an upstream JSON answer; None when it is not the endpoint's shape."""
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return None
    try:
        tokens = usage_fields(usage or {})
    except ValueError:
        return None
    fields: dict[str, Any] = {"status": status, "latency_ms": latency_ms}
    if tokens:
        fields["usage"] = tokens
    if endpoint == RESPONSES:
        output = data.get("output", [])
        if not isinstance(output, list) or not all(isinstance(o, dict) for o in output):
            return None
        texts = [str(p["text"]) for o in output if o.get("type") == "message" and isinstance(o.get("content"), list)
                 for p in o["content"] if isinstance(p, dict) and isinstance(p.get("text"), str)]
        fields.update(finish_reason=_text(data.get("status")), content="".join(texts) if texts else None,
                      reasoning_content=None, tool_calls=[])
        return fields
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        return None
    choice = choices[0] if choices else {}
    message = choice.get("message")
    if message is not None and not isinstance(message, dict):
        return None
    message = message or {}
    calls = message.get("tool_calls")
    fields.update(finish_reason=_text(choice.get("finish_reason")),
                  content=_text(message.get("content")) if message else _text(choice.get("text")),
                  reasoning_content=_text(message.get("reasoning_content")),
                  tool_calls=calls if isinstance(calls, list) else [])
    return fields


def _rewritten(data: dict[str, Any], withhold_reasoning: bool, canary: Canary | None, *,
               summarized: bool = False) -> bytes:
    """The upstream's answer as the client gets it: reasoning removed or summarized (``gateway.reasoning``), a
    canary appended (the log keeps the upstream's answer and names the canary)."""
    choices = data.get("choices") or []
    for i, choice in enumerate(choices):
        message = choice.get("message")
        if withhold_reasoning and isinstance(message, dict):
            message.pop("reasoning_content", None)
            message.pop("reasoning", None)
        elif summarized and isinstance(message, dict):
            for key in ("reasoning_content", "reasoning"):
                if isinstance(message.get(key), str):
                    message[key] = summarize(message[key])
        if canary and i == 0:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] += canary.text
            elif isinstance(choice.get("text"), str):
                choice["text"] += canary.text
    return bytes(orjson.dumps(data))


class _Quiet(Exception):
    """No chunk from the upstream within the keep-alive interval."""


async def _next_within(chunks: AsyncIterator[bytes], wait: float) -> bytes | None:
    """The upstream's next chunk, None at its end; ``_Quiet`` after ``wait`` seconds without one.

    A timer on the read rather than a task per stream; a read cut short by it loses nothing (aiohttp
    keeps what arrives in its buffer for the next read).
    """
    timer = asyncio.timeout(wait)
    try:
        async with timer:
            return await chunks.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if timer.expired():
            raise _Quiet from None
        raise  # the upstream's own read timeout


async def _relay(gw: Gateway, resp: aiohttp.ClientResponse, capture: StreamCapture,
                 ex: Exchange) -> AsyncIterator[bytes]:
    """Upstream bytes to the client as they arrive; keep-alives until the first; log in every case."""
    chunks = resp.content.iter_any().__aiter__()
    finished = False
    fault: Reject | None = None
    try:
        while True:
            try:
                chunk = await _next_within(chunks, gw.settings.keepalive_seconds)
                break
            except _Quiet:
                yield b": keep-alive\n\n"
        while chunk is not None:
            out = capture.feed(chunk)
            if out:
                yield out
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                chunk = None
        tail = capture.close()
        if tail:
            yield tail
        finished = True
    except UPSTREAM_ERRORS as exc:  # the upstream broke the stream (reset, timeout): not the client's doing
        fault = upstream_failure(exc)
        yield UPSTREAM_ERROR_EVENT
    except Exception as exc:  # a bug: log it, end the stream, keep the record
        log.exception("relaying the stream of %s failed", ex.record["exchange_id"])
        fault = Reject(500, "internal error", "api_error", "internal_error", detail=repr(exc))
    finally:
        _end_stream(resp, capture, ex, finished=finished, fault=fault)
