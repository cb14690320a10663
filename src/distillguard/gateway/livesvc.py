"""Live signals in their own process, shared by every gateway worker, off the request path.

Scoring a prompt (the elicitation classifier, the template signature) costs tens
of microseconds of pure Python; on a thread of the gateway's process it holds
the interpreter lock the event loop needs, in slices of the switch interval
(5 ms), and its objects lengthen every garbage collection: the largest share of
the gateway's tail latency (#23). Here one ``LiveService`` process keeps the
windows of ``live.LiveSignals`` for all the workers of a gateway, so an account
spread over workers is counted whole. Each worker's ``LiveClient`` sends it
(account, time, the request body as received: nothing is serialized again)
over a Unix socket without waiting, and keeps the flags the service sends back,
so a request reads its account's flag with a dict lookup.

Frames, both ways: kind (1 byte), meta and payload lengths (4 bytes each,
big-endian), meta (JSON), payload. Worker → service: ``O`` an observation
(meta ``[account, time]``, payload the body), ``R`` the worker loaded a policy
(meta: its version; a newer version than the service has seen ends the live
flags for every worker, once; an older or equal one asks for the current flags,
which the worker adds to its own), ``H`` hello (on connecting: as ``R``, except
that a service just started takes the version as the one in force). Service → worker: ``F`` a flag (meta ``[account,
action, reason, since]``), ``C`` all flags end, ``Y`` ready (the classifier is
fitted), ``D`` the service's counts (meta ``[dropped, unreadable]``).

Bounded both ways, best effort: a worker holds at most ``max_buffer`` bytes for
a service that is slow, restarting or gone, then drops observations and counts
them (``dropped``; a request never waits for the live view), and the service
queues at most ``max_queue`` observations for its classifier, dropping (and
counting) the rest. ``LiveProcess`` runs the service and starts it again if it
dies; the workers reconnect by themselves and send what they held meanwhile.

>>> frames = Frames()
>>> frames.feed(encode(b"O", ["acct-1", 1.5], b'{"prompt": "hi"}')[:7])
[]
>>> frames.feed(encode(b"O", ["acct-1", 1.5], b'{"prompt": "hi"}')[7:])
[(b'O', ['acct-1', 1.5], b'{"prompt": "hi"}')]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import orjson

from distillguard.gateway.live import LiveFlag, LiveSettings, LiveSignals

log = logging.getLogger(__name__)
_HEAD = struct.Struct("!cII")
MAX_FRAME = 64 * 1024 * 1024  # larger than any request body the gateway accepts
_RETRY_SECONDS = 0.2  # between attempts to reach the service
_STATS_SECONDS = 1.0  # how often the service tells the workers its counts (when they changed)


def encode(kind: bytes, meta: Any, payload: bytes = b"") -> bytes:
    """One frame."""
    m = orjson.dumps(meta)
    return _HEAD.pack(kind, len(m), len(payload)) + m + payload


class Frames:
    """Splits a byte stream into ``(kind, meta, payload)`` frames; ``ValueError`` on a frame that cannot be one.

    >>> Frames().feed(b"O" + bytes(4) + (MAX_FRAME + 1).to_bytes(4, "big"))
    Traceback (most recent call last):
    ...
    ValueError: a live-signal frame of 67108865 bytes
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, Any, bytes]]:
        self._buf += data
        out: list[tuple[bytes, Any, bytes]] = []
        at = 0
        while len(self._buf) - at >= _HEAD.size:
            kind, m, p = _HEAD.unpack_from(self._buf, at)
            if m + p > MAX_FRAME:
                raise ValueError(f"a live-signal frame of {m + p} bytes")
            end = at + _HEAD.size + m + p
            if len(self._buf) < end:
                break
            meta = orjson.loads(self._buf[at + _HEAD.size:at + _HEAD.size + m])  # JSONDecodeError is a ValueError
            out.append((kind, meta, bytes(self._buf[at + _HEAD.size + m:end])))
            at = end
        del self._buf[:at]  # once per chunk, not per frame
        return out

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held (at most one frame's worth)."""
        return len(self._buf)


def _newer(version: Any, than: Any) -> bool:
    """Whether policy ``version`` (``[mtime_ns, size]`` or None) was written after ``than``.

    >>> _newer([2, 10], [1, 10]), _newer([1, 10], [1, 10]), _newer([1, 10], None), _newer(None, [1, 10])
    (True, False, True, False)
    """
    if not isinstance(version, list) or len(version) != 2:
        return False
    if not isinstance(than, list) or len(than) != 2:
        return True
    return bool(version[0] > than[0] or (version[0] == than[0] and version != than))


# -- the worker's side ---------------------------------------------------------------------------


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, client: LiveClient) -> None:
        self.client = client
        self.frames = Frames()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.frames.feed(data)
        except ValueError:
            log.exception("live signals: unreadable frame from the live service; reconnecting")
            if self.transport is not None:
                self.transport.close()
            return
        for kind, meta, _ in frames:
            self.client.received(kind, meta)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class LiveClient:
    """A worker's view of the live service: ``observe`` (a socket write, never waits), ``flag`` (a dict lookup).

    Same surface as ``LiveSignals`` for the gateway. Flags and readiness come from the service. While
    the service is unreachable (starting, restarting) observations are held, up to ``max_buffer``
    bytes, and sent when it is back; beyond that they are dropped and counted. Flags stay as they were.
    """

    def __init__(self, path: str, max_buffer: int = 8 * 1024 * 1024) -> None:
        self.path, self.max_buffer = path, max_buffer
        self._flags: dict[str, LiveFlag] = {}
        self.ready = threading.Event()  # the service's classifier is fitted (stays set across reconnects)
        self.own_dropped = 0  # observations this worker could not send or hold
        self.service_dropped = 0  # the service's own count (every worker's observations), as it last said
        self.connects = 0  # connections made to the service (more than one: it restarted)
        self._version: Any = None  # the policy version this worker last loaded
        self._held: deque[bytes] = deque()  # frames waiting for a connection
        self._held_bytes = 0
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Observations left out of the live windows: this worker's, and the service's (all workers')."""
        return self.own_dropped + self.service_dropped

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @property
    def held(self) -> int:
        """Bytes held for the service (waiting for a connection, or in the connection's write buffer)."""
        transport = self._transport
        return self._held_bytes + (transport.get_write_buffer_size() if transport is not None else 0)

    def observe(self, account: str, request: dict[str, Any], *, raw: bytes | None = None,
                now: float | None = None) -> None:
        body = raw if raw is not None else orjson.dumps(request)
        frame = encode(b"O", [account, time.time() if now is None else now], body)
        if self.held + len(frame) > self.max_buffer or len(frame) > MAX_FRAME:
            self.own_dropped += 1
            return
        if self.connected:
            assert self._transport is not None
            self._transport.write(frame)
        else:
            self._held.append(frame)
            self._held_bytes += len(frame)

    def flag(self, account: str) -> LiveFlag | None:
        return self._flags.get(account)

    @property
    def flagged(self) -> int:
        return len(self._flags)

    def reset(self, version: object = None) -> None:
        """A new policy: this worker's flags end now, and the service ends them for every worker (once a version)."""
        self._version = version
        self._flags = {}
        if self.connected:
            assert self._transport is not None
            self._transport.write(encode(b"R", version))

    def received(self, kind: bytes, meta: Any) -> None:
        """A frame from the service."""
        try:
            if kind == b"F":
                account, action, reason, since = meta
                self._flags = {**self._flags, str(account): LiveFlag(str(action), str(reason), float(since))}
            elif kind == b"C":
                self._flags = {}
            elif kind == b"Y":
                self.ready.set()
            elif kind == b"D":
                self.service_dropped = int(meta[0]) + int(meta[1])
        except (TypeError, ValueError, IndexError):
            log.error("live signals: unreadable %r frame from the live service: %.200r", kind, meta)

    def warm(self) -> None:
        """Connect (from the event loop; called at start-up), and stay connected."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._connected())

    def _joined(self, transport: asyncio.Transport) -> None:
        """A new connection: say which policy this worker has (the service answers with the flags), then
        send what was held."""
        self.connects += 1
        transport.write(encode(b"H", self._version))
        if self._held:
            transport.writelines(self._held)
            self._held.clear()
            self._held_bytes = 0
        self._transport = transport

    async def _connected(self) -> None:
        loop = asyncio.get_running_loop()
        warned = False
        while True:
            try:
                transport, protocol = await loop.create_unix_connection(lambda: _ClientProtocol(self), self.path)
            except OSError as exc:
                if not warned:
                    log.warning("live signals: cannot reach the live service at %s (%s); retrying", self.path, exc)
                    warned = True
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            if warned or self.connects:
                log.info("live signals: connected to the live service")
            warned = False
            self._joined(transport)
            await protocol.closed
            self._transport = None
            log.warning("live signals: the connection to the live service was lost; reconnecting")
            await asyncio.sleep(_RETRY_SECONDS)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None


# -- the service's side --------------------------------------------------------------------------


class _ServiceProtocol(asyncio.Protocol):
    def __init__(self, service: LiveService) -> None:
        self.service = service
        self.frames = Frames()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.service.joined(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            frames = self.frames.feed(data)
        except ValueError:
            log.exception("live service: unreadable frame; closing that connection")
            self.service.unreadable += 1
            self.transport.close()
            return
        for kind, meta, payload in frames:
            self.service.received(kind, meta, payload=payload, transport=self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.service.left(self.transport)


class LiveService:
    """The live windows of every worker, served on a Unix socket (``run``; in its own process: ``LiveProcess``)."""

    def __init__(self, settings: LiveSettings, path: str, engine: LiveSignals | None = None) -> None:
        self.path = path
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine = engine or LiveSignals(settings)
        self.engine.on_flag = self._flagged
        self.workers: set[asyncio.Transport] = set()
        self.version: Any = None  # the newest policy version a worker reported
        self.unreadable = 0  # observations (or frames) that could not be read

    def _flagged(self, account: str, flag: LiveFlag) -> None:  # on the engine's thread
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, _flag_frame(account, flag))

    def _broadcast(self, frame: bytes) -> None:
        for transport in list(self.workers):
            if not transport.is_closing():
                transport.write(frame)

    def joined(self, transport: asyncio.Transport) -> None:
        """A worker connected (it sends its policy version next, and gets the flags then)."""
        self.workers.add(transport)
        if self.engine.ready.is_set():
            transport.write(encode(b"Y", None))

    def left(self, transport: asyncio.Transport) -> None:
        self.workers.discard(transport)

    def received(self, kind: bytes, meta: Any, *, payload: bytes, transport: asyncio.Transport) -> None:
        if kind == b"O":
            try:
                body = orjson.loads(payload)
                account, at = str(meta[0]), float(meta[1])
            except (TypeError, ValueError, IndexError, KeyError):  # orjson.JSONDecodeError is a ValueError
                self.unreadable += 1
                return
            if isinstance(body, dict):
                self.engine.observe(account, body, now=at)
            else:
                self.unreadable += 1
        elif kind == b"R" or kind == b"H":
            if kind == b"H" and self.version is None:  # a new service (started again) learns the version in force
                self.version = meta
            if _newer(meta, self.version):  # every worker reports the same reload: act on the first
                self.version = meta
                self.engine.reset()
                self._broadcast(encode(b"C", None))
            else:  # a worker connecting, or reloading a version others loaded first: the flags since that version
                transport.writelines([_flag_frame(a, f) for a, f in self.engine.flags().items()])
        else:
            self.unreadable += 1

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``on_ready`` is called once the classifier is fitted."""
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        server = await self._loop.create_unix_server(lambda: _ServiceProtocol(self), self.path)
        os.chmod(self.path, 0o600)  # observations carry prompts
        self.engine.warm()

        async def announce() -> None:
            while not self.engine.ready.is_set():  # polled: a thread waiting on it would hold up the exit
                await asyncio.sleep(0.05)
            self._broadcast(encode(b"Y", None))
            if on_ready is not None:
                on_ready()

        async def report() -> None:
            said: tuple[int, int] = (0, 0)
            while True:
                await asyncio.sleep(_STATS_SECONDS)
                counts = (self.engine.dropped, self.unreadable)
                if counts != said:
                    said = counts
                    self._broadcast(encode(b"D", list(counts)))

        tasks = [asyncio.create_task(announce()), asyncio.create_task(report())]
        try:
            async with server:
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _flag_frame(account: str, flag: LiveFlag) -> bytes:
    return encode(b"F", [account, flag.action, flag.reason, flag.since])


def lower_priority(priority: str) -> str:
    """Lower this process's CPU priority (``LiveSettings.priority``); the priority it got."""
    if priority == "idle" and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:  # a request's worker preempts it at once, whatever the scheduler's time slices
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            pass
    if priority in ("idle", "low"):
        with contextlib.suppress(OSError):
            os.nice(10)
            return "low"
    return "normal"


def _service_main(settings_json: str, path: str, log_format: str) -> None:
    """The live process: serve until the gateway process that started it ends (or SIGTERM)."""
    import signal

    from distillguard._logging import configure_logging

    configure_logging(log_format)
    settings = LiveSettings.model_validate_json(settings_json)
    log.info("live-signal process started (pid %d)", os.getpid())
    parent = multiprocessing.parent_process()

    def ready() -> None:  # fitted at normal priority (the workers' readiness waits for it), then best effort
        log.info("live signals ready; CPU priority %s", lower_priority(settings.priority))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if parent is not None:  # the gateway was killed (even SIGKILL): do not outlive it
            loop.add_reader(parent.sentinel, stop.set)
        await LiveService(settings, path).run(stop, ready)

    asyncio.run(main())


class LiveProcess:
    """The live service in a process of its own, on a socket in a private directory, started again if it dies.

    ``start`` starts it and a watcher thread; ``stop`` ends both and removes the socket's directory.
    A process that keeps dying is started again after a growing pause (up to ``max_pause`` seconds);
    meanwhile the workers hold, then drop and count, their observations and keep serving.
    """

    def __init__(self, settings: LiveSettings, log_format: str = "text", max_pause: float = 30.0) -> None:
        self.settings, self.log_format, self.max_pause = settings, log_format, max_pause
        self.directory = Path(tempfile.mkdtemp(prefix="distillguard-live-"))  # 0700: only this user connects
        if len(str(self.directory)) > 90:  # a Unix socket's path has room for 107 bytes: a long TMPDIR would not do
            self.directory.rmdir()
            self.directory = Path(tempfile.mkdtemp(prefix="distillguard-live-", dir="/tmp"))
        self.path = str(self.directory / "live.sock")
        self.proc: BaseProcess | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the parent's threads or heap
        self.proc = ctx.Process(target=_service_main, name="distillguard-live", daemon=True,
                                args=(self.settings.model_dump_json(), self.path, self.log_format))
        self.proc.start()
        self._started_at = time.monotonic()

    def start(self) -> LiveProcess:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="live-watch")
        self._watcher.start()
        return self

    def _watch(self) -> None:
        quick = 0  # deaths in a row within a minute of starting
        while not self._stop.is_set():
            proc = self.proc
            assert proc is not None
            multiprocessing.connection.wait([proc.sentinel], timeout=0.5)
            if proc.is_alive() or self._stop.is_set():
                continue
            quick = quick + 1 if time.monotonic() - self._started_at < 60 else 1
            pause = min(self.max_pause, 0.5 * 2 ** (quick - 1))
            log.error("the live-signal process (pid %s) exited with %s; starting another in %.1f s "
                      "(requests are served meanwhile; their observations are held, then dropped and counted)",
                      proc.pid, proc.exitcode, pause)
            if self._stop.wait(pause):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the watcher and the process; remove the socket and its directory."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
        proc = self.proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)
