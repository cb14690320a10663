"""Serving the gateway: uvicorn with the limits an exposed endpoint needs.

``run(app, settings)`` is what ``distillguard gateway`` runs. Compared with
uvicorn's defaults: the h11 parser with a cap on the request head
(``max_header_bytes``: a multi-megabyte header is refused while it is read;
``http_parser = "httptools"`` is faster but has no such cap, leaving only the
gateway's per-header 431);
a connection must send its request head within ``header_timeout`` seconds (a
half-open or trickling connection is closed; uvicorn alone waits forever
before the first request); ``X-Forwarded-For`` is never applied by the server
(``proxy_headers=False``: the gateway itself trusts exactly ``trusted_hops``
entries, and a loopback peer is not a proxy).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from distillguard.gateway.config import GatewaySettings


def guarded(base: type[Any], header_timeout: float) -> type[Any]:
    """uvicorn's ``base`` protocol (h11 or httptools), closing connections that do not complete a request head
    within ``header_timeout`` seconds of connecting or of their last response."""

    class GuardedProtocol(base):  # type: ignore[misc]
        _head_deadline: asyncio.TimerHandle | None = None

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

    return GuardedProtocol


def server_config(app: Any, settings: GatewaySettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of the gateway (``overrides`` for tests: a port, a log level)."""
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=30,
        http=guarded(H11Protocol if settings.http_parser == "h11" else HttpToolsProtocol, settings.header_timeout),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        proxy_headers=False, timeout_keep_alive=5)
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run(app: Any, settings: GatewaySettings) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (in-flight requests drain, then the lifespan ends)."""
    uvicorn.Server(server_config(app, settings)).run()
