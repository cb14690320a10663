"""Run the console with uvicorn (loopback by default: the console shows customer traffic)."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from distillguard.console.app import create_app
from distillguard.console.state import Console, ConsoleSettings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(settings: ConsoleSettings) -> None:
    """Serve the console until interrupted."""
    console = Console(settings)
    if not is_loopback(settings.host):
        log.warning("the console listens on %s, beyond this machine: put it behind a TLS reverse proxy", settings.host)
    try:
        uvicorn.run(create_app(console), host=settings.host, port=settings.port, log_level="warning",
                    server_header=False)
    finally:
        console.close()
