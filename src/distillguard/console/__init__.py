"""The analyst console (``distillguard console``): a local web application over the store and a scan's
outputs where analysts work a queue, read a campaign's or an account's evidence and decide.

Modules, one idea each: ``auth`` (users, sessions, CSRF), ``decisions`` (the append-only audit table),
``effects`` (what decisions write: the gateway's policy, the next scan's cleared accounts, labels),
``index`` (a per-scan index of the store, so pages do not read 10M exchanges), ``scan_data`` (the queue's
queries), ``account_data`` (an account against the reference), ``pages`` (each page's content), ``state``
(settings and shared state), ``app`` (the Starlette routes) and ``server`` (running it).
"""

from __future__ import annotations

from distillguard.console.state import Console, ConsoleSettings

__all__ = ["Console", "ConsoleSettings"]
