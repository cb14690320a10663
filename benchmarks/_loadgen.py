"""A light HTTP/1.1 load generator and a canned upstream, for measuring the gateway on 2 CPUs.

Why by hand: a general client (httpx) costs about half a millisecond of CPU per
request in Python, so at 1,000 requests/s the load generator alone saturates a
core and its queueing swamps the millisecond being measured. These speak just
enough HTTP/1.1 over keep-alive connections on uvloop (prebuilt request bytes,
Content-Length and chunked bodies) to cost a few tens of microseconds a request.
The canned upstream answers a chat completion (or a three-event stream) at once.

    python benchmarks/_loadgen.py upstream PORT      # run the canned upstream
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "fast",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}).encode()
MODELS = b'{"object":"list","data":[{"id":"fast","object":"model"}]}'


def _events() -> bytes:
    chunks = []
    for delta in ({"role": "assistant", "content": ""}, {"content": "Paris."}, {}):
        event = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fast",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}]}
        chunks.append(b"data: " + json.dumps(event).encode() + b"\n\n")
    chunks.append(b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":'
                  b'{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}\n\n')
    chunks.append(b"data: [DONE]\n\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                 % len(ANSWER)) + ANSWER
MODELS_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                   % len(MODELS)) + MODELS
STREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                   + _events())


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return -1


async def _serve_upstream(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = _content_length(head)
                body = await reader.readexactly(n) if n > 0 else b""
                if head.startswith(b"GET"):
                    writer.write(MODELS_RESPONSE)
                else:
                    stream = b'"stream":true' in body or b'"stream": true' in body
                    writer.write(STREAM_RESPONSE if stream else JSON_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def request_bytes(path: str, body: dict[str, object], headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n{extra}\r\n").encode() + data


@dataclass
class Target:
    """One endpoint, its prebuilt request and its idle keep-alive connections."""

    port: int
    raw: bytes
    stream: bool
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # failure kind → count
    stale_retries: int = 0

    def _fail(self, reason: str) -> None:
        self.failures += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    async def one(self) -> None:
        """Send the request; record time to the whole answer, or to the first body chunk of a stream.

        A kept-alive connection the server has closed meanwhile fails before any response byte; like
        any HTTP client, the request is then sent again once on a fresh connection (counted in
        ``stale_retries``, not as a failure).
        """
        reused = bool(self.idle)
        conn = self.idle.pop() if reused else await asyncio.open_connection("127.0.0.1", self.port)
        start = time.perf_counter()
        try:
            elapsed, ok, status = await self._exchange(conn)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            conn[1].close()
            if not (reused and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial):
                self._fail(type(exc).__name__)
                return
            self.stale_retries += 1
            conn = await asyncio.open_connection("127.0.0.1", self.port)
            start = time.perf_counter()
            try:
                elapsed, ok, status = await self._exchange(conn)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc2:
                conn[1].close()
                self._fail(type(exc2).__name__)
                return
        except ValueError as exc:
            conn[1].close()
            self._fail(type(exc).__name__)
            return
        if ok:
            self.latencies.append(elapsed - start)
        else:
            self._fail(f"HTTP {status}")
        self.idle.append(conn)

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> tuple[float, bool, str]:
        """(time the answer, or a stream's first chunk, arrived; 200 or not; status)."""
        reader, writer = conn
        writer.write(self.raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head[9:12].decode()
        n = _content_length(head)
        if n >= 0:
            await reader.readexactly(n)
            return time.perf_counter(), status == "200", status
        first = -1.0  # chunked: the first chunk is the first byte of the stream
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if first < 0:
                first = time.perf_counter()
            await reader.readexactly(size + 2)
            if size == 0:
                return first, status == "200", status


async def open_loop(targets: list[Target], rate: float, seconds: float) -> None:
    """Requests at ``rate`` per second in total, round-robin over ``targets``, on a fixed schedule.

    Open loop: a request starts at its time whether or not earlier ones have finished, so a slow
    server shows up as latency instead of as a lower rate.
    """
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(targets[i % len(targets)].one()))
    await asyncio.gather(*tasks)


async def closed_loop(target: Target, connections: int, seconds: float) -> float:
    """``connections`` clients each sending its next request as soon as the last is answered, for ``seconds``;
    returns the seconds it took (requests counted in ``target``).

    Closed loop: the server sets the pace, so this measures throughput (and latency at that throughput).
    """
    start = time.perf_counter()
    deadline = start + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            await target.one()

    await asyncio.gather(*(client() for _ in range(connections)))
    return time.perf_counter() - start


def run(coro: object) -> None:
    import uvloop

    uvloop.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        run(_serve_upstream(int(sys.argv[2])))
