"""Loopback servers for the lab, and the address check that keeps the harvest on the user's own servers.

>>> allowed_url("http://127.0.0.1:8080/v1")
'http://127.0.0.1:8080/v1'
>>> allowed_url("https://api.example.com/v1", allow_hosts=["api.example.com"])
'https://api.example.com/v1'
>>> allowed_url("https://api.example.com/v1")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
distillguard.errors.ConfigError: the harvest talks only to loopback addresses ...
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from distillguard.errors import ConfigError


def free_port() -> int:
    """A port free on loopback now, for a server in another process (it may be taken before that server binds
    it; a server in this process runs in ``serving``, which binds its port first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loopback_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to ``127.0.0.1:port`` (0: a free port, held from now on) for ``uvicorn.Server.run``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds its own
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def serving(app: Any, port: int | None = None, *, timeout: float = 30.0,
            config: Callable[[int], uvicorn.Config] | None = None) -> Iterator[str]:
    """Run an ASGI ``app`` with uvicorn in a thread on loopback; yield ``http://127.0.0.1:PORT``.

    ``config`` builds the server's configuration (its app included) for the port taken, where uvicorn's
    defaults will not do. Leaving the block stops the server the way SIGTERM would (in-flight requests
    drain, lifespan ends).
    """
    sock = _loopback_socket(port or 0)  # bound before uvicorn starts: no other server can take the port meanwhile
    port = int(sock.getsockname()[1])
    try:
        server = uvicorn.Server(config(port) if config is not None
                                else uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name=f"uvicorn-{port}")
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                raise RuntimeError(f"the server on port {port} did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout)
    finally:
        sock.close()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_url(url: str, allow_hosts: Sequence[str] = ()) -> str:
    """``url`` if its host is loopback or listed in ``allow_hosts``; ``ConfigError`` otherwise."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"not an http(s) URL: {url!r}")
    if not is_loopback(host) and host not in allow_hosts:
        raise ConfigError(f"the harvest talks only to loopback addresses unless the host is allowed explicitly; "
                          f"{host} is not (add --allow-host {host} if it is your own server)")
    return url
