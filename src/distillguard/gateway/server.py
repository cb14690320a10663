"""Serving the gateway: uvicorn with the limits an exposed endpoint needs, one or several workers.

``serve(settings)`` is what ``distillguard gateway`` runs: the live-signal
process (``livesvc``), then one worker in this process, or ``workers`` worker
processes accepting on one listening socket (limits shared through Redis, live
windows through the one live process). Compared with uvicorn's defaults: the
httptools parser with a cap on the request head (``max_header_bytes``: a head
that grows past it is refused while it is read, with at most one read's worth
of bytes buffered beyond it; ``http_parser = "h11"`` caps it inside h11); a
connection must send its request head within ``header_timeout`` seconds (a
half-open or trickling connection is closed; uvicorn alone waits forever
before the first request); ``X-Forwarded-For`` is never applied by the server
(``proxy_headers=False``: the gateway itself trusts exactly ``trusted_hops``
entries, and a loopback peer is not a proxy). Before serving, everything
start-up allocated is moved out of the garbage collector's reach
(``gc.freeze``): a full collection then walks what requests allocate, not the
whole heap (#23).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from distillguard.errors import ConfigError, DistillGuardError
from distillguard.gateway.config import GatewaySettings

log = logging.getLogger(__name__)


class HeadTooLarge(Exception):
    """A request head past ``max_header_bytes`` (the httptools parser turns it into a 400 and a close)."""


def guarded(base: type[Any], header_timeout: float, max_header_bytes: int | None = None) -> type[Any]:
    """uvicorn's ``base`` protocol (h11 or httptools), closing connections that do not complete a request head
    within ``header_timeout`` seconds of connecting or of their last response; with ``max_header_bytes``
    (httptools), refusing heads larger than that."""

    class GuardedProtocol(base):  # type: ignore[misc]
        _head_deadline: asyncio.TimerHandle | None = None
        _in_head = False  # between the start of a request and the end of its head
        _head_bytes = 0  # bytes received while the head was incomplete (an upper bound of its size)
        _head_size = 0  # the head's parsed size: request line and header fields

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            self._head_deadline = self.loop.call_later(header_timeout, self._head_expired)

        def _head_expired(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete  # no request head received since
            if idle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request head (keep-alive) gets the same time

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            super().connection_lost(exc)

        if max_header_bytes is not None:  # httptools buffers a header field of any length: cap it here

            def data_received(self, data: bytes) -> None:
                if self._in_head:
                    self._head_bytes += len(data)
                super().data_received(data)
                if self._in_head and self._head_bytes > max_header_bytes and not self.transport.is_closing():
                    self.send_400_response("Request header fields too large.")

            def on_message_begin(self) -> None:
                self._in_head, self._head_bytes, self._head_size = True, 0, 0
                super().on_message_begin()

            def on_url(self, url: bytes) -> None:
                self._head_size += len(url)
                super().on_url(url)

            def on_header(self, name: bytes, value: bytes) -> None:
                self._head_size += len(name) + len(value) + 4  # ": " and CRLF
                if self._head_size > max_header_bytes:
                    raise HeadTooLarge  # httptools stops parsing; uvicorn answers 400 and closes
                super().on_header(name, value)

            def on_headers_complete(self) -> None:
                self._in_head = False
                super().on_headers_complete()

    return GuardedProtocol


def _http_protocol(settings: GatewaySettings) -> type[Any]:
    """uvicorn's httptools protocol with the head cap, or h11's (asked for, or where httptools is not installed)."""
    if settings.http_parser == "httptools":
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError:
            log.warning("httptools is not installed; using the h11 parser (pip install httptools)")
        else:
            return guarded(HttpToolsProtocol, settings.header_timeout, settings.max_header_bytes)
    return guarded(H11Protocol, settings.header_timeout)


def server_config(app: Any, settings: GatewaySettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of the gateway (``overrides`` for tests: a port, a log level).

    The event loop is uvloop where it is installed (uvicorn's "auto"), asyncio's otherwise."""
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=30,
        http=_http_protocol(settings), h11_max_incomplete_event_size=settings.max_header_bytes, loop="auto",
        proxy_headers=False, timeout_keep_alive=5)
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run(app: Any, settings: GatewaySettings, sockets: list[socket.socket] | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (in-flight requests drain, then the lifespan ends)."""
    gc.collect()
    gc.freeze()  # start-up's objects (modules, settings, tables) live as long as the process: never walk them again
    uvicorn.Server(server_config(app, settings)).run(sockets=sockets)


def run_worker(settings: GatewaySettings, live_path: str | None, sockets: list[socket.socket] | None = None) -> None:
    """One gateway worker: its own log segments, key store and policy reader; limits (Redis) and live windows
    (the live process at ``live_path``; None: on a thread here) shared."""
    from distillguard.gateway.app import Gateway, create_app
    from distillguard.gateway.keys import KeyStore
    from distillguard.gateway.livesvc import LiveClient
    from distillguard.gateway.policy import Policy
    from distillguard.gateway.segments import SegmentLog

    log_ = SegmentLog(settings.log_dir, settings.flush_interval, stall_seconds=settings.log_stall_seconds)
    try:
        gw = Gateway(settings, KeyStore(settings.keys), Policy(settings.policy), log_,
                     live=LiveClient(live_path) if live_path else None)
        run(create_app(gw), settings, sockets)
    finally:
        log_.close()  # flushes everything queued before exiting


def serve(settings: GatewaySettings) -> None:
    """Run the gateway until SIGINT/SIGTERM: the live process, then one worker here or ``workers`` processes.

    The live process and the workers are started with ``spawn``: a script calling this must do so under
    ``if __name__ == "__main__":`` (``distillguard gateway`` does)."""
    from distillguard.gateway.livesvc import LiveProcess

    if settings.workers > 1:
        _check_start_up(settings)
    with _signals_after_cleanup():
        live = LiveProcess(settings.live, settings.log_format).start() if settings.live.enabled else None
        try:
            if settings.workers == 1:
                run_worker(settings, live.path if live else None)
            else:
                _supervise(settings, live.path if live else None)
        finally:
            if live is not None:
                live.stop()


@contextlib.contextmanager
def _signals_after_cleanup() -> Iterator[None]:
    """Let SIGTERM/SIGINT end the process only once the block has cleaned up.

    uvicorn handles them while it serves, then raises the one it caught again with the handler it found in
    place: here, one that notes it. After the block (its ``finally`` clauses run) the signal is raised once
    more with the handler from before, so the process still ends as the signal says (SIGTERM: exit -15).
    """
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


def _worker_main(settings_json: str, live_path: str | None, sock: socket.socket) -> None:
    from distillguard._logging import configure_logging

    settings = GatewaySettings.model_validate_json(settings_json)
    configure_logging(settings.log_format)
    parent = multiprocessing.parent_process()
    if parent is not None:  # the supervisor was killed (even SIGKILL): drain, flush and end with it

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=orphaned, daemon=True, name="parent-watch").start()
    with _signals_after_cleanup():
        run_worker(settings, live_path, [sock])


class WorkersFailing(DistillGuardError):
    """Gateway workers kept exiting right after they started (a setting or the environment is wrong)."""


def _check_start_up(settings: GatewaySettings) -> None:
    """Open what every worker opens (key store, policy, log directory) once here, so that a bad setting is one
    clear error now rather than workers dying one after another."""
    from distillguard.gateway.keys import KeyStore
    from distillguard.gateway.policy import Policy
    from distillguard.gateway.segments import SegmentLog

    KeyStore(settings.keys)
    Policy(settings.policy)
    SegmentLog(settings.log_dir, settings.flush_interval).close()  # writes nothing: segments start with a record


def _listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The socket every worker accepts on, listening already (connections wait while workers start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _supervise(settings: GatewaySettings, live_path: str | None, quick_seconds: float = 10.0) -> None:
    """``workers`` processes on one listening socket (the kernel hands each connection to one of them); a worker
    that dies is replaced; SIGTERM/SIGINT drain them all. Workers that keep dying at start-up end the gateway."""
    sock = _listening_socket(settings.host, settings.port)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each: no threads or locks of this one
    payload = settings.model_dump_json()
    stopping = threading.Event()
    started: dict[int, float] = {}
    quick: deque[float] = deque()  # when workers died within ``quick_seconds`` of starting

    def start(i: int) -> BaseProcess:
        proc = ctx.Process(target=_worker_main, args=(payload, live_path, sock), name=f"distillguard-gateway-{i}")
        proc.start()
        started[i] = time.monotonic()
        return proc

    def stop(signum: int, _: object) -> None:
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: list[BaseProcess] = []
    try:
        workers = [start(i) for i in range(settings.workers)]
        log.info("gateway supervisor: %d workers on %s:%d", settings.workers, settings.host, settings.port)
        while not stopping.is_set():
            multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0.5)
            for i, w in enumerate(workers):
                if w.is_alive() or stopping.is_set():
                    continue
                now = time.monotonic()
                if now - started[i] < quick_seconds:
                    quick.append(now)
                while quick and quick[0] < now - 6 * quick_seconds:
                    quick.popleft()
                if len(quick) > 2 * settings.workers:
                    raise WorkersFailing(f"gateway workers keep exiting at start-up (the last with {w.exitcode}); "
                                         "see the log above")
                log.error("gateway worker %d (pid %s) exited with %s; starting another", i, w.pid, w.exitcode)
                workers[i] = start(i)
    finally:
        for w in workers:  # SIGTERM: each worker stops accepting, finishes its requests, flushes its log
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(60)
            if w.is_alive():
                log.error("gateway worker pid %s did not stop; killing it", w.pid)
                w.kill()
                w.join()
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
