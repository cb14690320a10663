"""Streams relayed by ``gateway.eventstream``: keep-alives while the model is silent, and a client that
hangs up (while waiting or mid-stream) ends the relay and the upstream call, logged as interrupted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx

from distillguard.gateway.eventstream import EventStream

CHAT = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 4, "stream": True}


def _stream(g: Any, model: str, stop_after: str | None = None) -> tuple[str, list[str]]:
    """The exchange id and the lines received, hanging up at the first line starting with ``stop_after``."""
    lines = []
    with httpx.stream("POST", f"{g.url}/v1/chat/completions", json={**CHAT, "model": model},
                      headers=g.headers(), timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                continue  # the blank line that ends each event
            lines.append(line)
            if stop_after is not None and line.startswith(stop_after):
                break
    return r.headers["x-request-id"], lines


def test_keep_alives_until_the_first_event_then_the_whole_answer(tmp_path: Any, fake_upstream: Any,
                                                                 make_gateway: Any) -> None:
    with make_gateway(tmp_path, fake_upstream, keepalive_seconds=0.05) as g:
        exchange_id, lines = _stream(g, "late")  # the first event after 0.3 s
        first = next(i for i, line in enumerate(lines) if line.startswith("data:"))
        assert lines[:first].count(": keep-alive") >= 2
        assert lines[-1] == "data: [DONE]" and ": keep-alive" not in lines[first:]
        [record] = g.record(exchange_id)
    assert record["response"]["content"] == "four" and record["response"]["finish_reason"] == "stop"
    assert record["response"]["interrupted"] is False


def test_a_client_that_hangs_up_while_the_model_is_silent(tmp_path: Any, fake_upstream: Any,
                                                          make_gateway: Any) -> None:
    with make_gateway(tmp_path, fake_upstream, keepalive_seconds=0.05) as g:
        started = time.monotonic()
        exchange_id, _ = _stream(g, "silent", stop_after=": keep-alive")  # the first event would take 5 s
        [record] = g.record(exchange_id)
        assert time.monotonic() - started < 4  # logged as the client left, not when the model would have answered
        # The gateway still serves: the hang-up cancelled that relay, nothing else.
        assert g.post("/v1/chat/completions", {**CHAT, "model": "fake", "stream": False}).status_code == 200
    assert record["response"]["interrupted"] is True
    assert record["response"]["finish_reason"] == "client_disconnected"


def test_a_client_that_hangs_up_mid_stream(tmp_path: Any, fake_upstream: Any, make_gateway: Any) -> None:
    with make_gateway(tmp_path, fake_upstream) as g:
        exchange_id, lines = _stream(g, "hang", stop_after="data: {")  # the second event would take 5 s
        [record] = g.record(exchange_id)
    assert json.loads(lines[-1].removeprefix("data: "))["choices"][0]["delta"]["content"] == "fo"
    assert record["response"]["interrupted"] is True and record["response"]["content"] == "fo"


def test_a_client_gone_before_the_stream_begins_still_ends_it() -> None:
    """The relay never starts (the client left while the headers were being sent): ``on_close`` still runs."""
    started, closed = [], []

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"data: 1\n\n"

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        await asyncio.sleep(1)  # a slow client socket: the disconnect is noticed meanwhile

    async def main() -> None:
        stream = EventStream(body(), on_close=lambda: closed.append(True))
        await asyncio.wait_for(stream({"type": "http"}, receive, send), 5)

    asyncio.run(main())
    assert closed == [True] and started == []


def _endless() -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(10)
            yield b"data: x\n\n"
    return body()


async def _ignore(message: MutableMapping[str, Any]) -> None:
    pass


def test_a_shutdown_cancel_that_lands_with_a_hang_up_still_propagates() -> None:
    async def main() -> bool:
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        task = asyncio.ensure_future(EventStream(_endless())({"type": "http"}, receive, _ignore))
        await asyncio.sleep(0.05)
        gone.set()  # the client hangs up ...
        await asyncio.sleep(0)  # (the watcher has its answer; its callback is queued)
        task.cancel()  # ... and the server cancels the request in the same loop iteration
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(main())


def test_a_client_whose_messages_cannot_be_read_ends_the_stream() -> None:
    closed = []

    async def receive() -> dict[str, Any]:
        raise RuntimeError("a middleware's receive failed")

    async def main() -> None:
        stream = EventStream(_endless(), on_close=lambda: closed.append(True))
        await asyncio.wait_for(stream({"type": "http"}, receive, _ignore), 5)  # not the body's 10 s per chunk

    asyncio.run(main())
    assert closed == [True]
