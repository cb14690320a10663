"""One exchange on its way through the gateway: its log record, its token reservation, logged exactly once.

Whatever path a request takes (rejected, answered, streamed, interrupted, a
bug), ``Exchange.finish`` or ``Exchange.reject`` writes its one record and
settles its tokens: unused reservation refunded, usage beyond it charged (the
bucket goes into debt), nothing settled when usage is unknown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from distillguard.gateway.limits import Limit, Limiter
from distillguard.gateway.reject import Reject

log = logging.getLogger(__name__)


class Exchange:
    def __init__(self, record: dict[str, Any], write: Callable[[dict[str, Any]], None]) -> None:
        self.record, self._write = record, write
        self.started = time.perf_counter()
        self.logged = False
        self.reserved = 0
        self._limiter: Limiter | None = None
        self._rules: list[tuple[str, Limit]] = []

    def latency_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def reserve(self, limiter: Limiter, rules: list[tuple[str, Limit]], tokens: int) -> None:
        """Remember a granted token reservation, to settle it when the exchange ends."""
        self._limiter, self._rules, self.reserved = limiter, rules, tokens

    def settle(self, used: int | None) -> None:
        """Refund ``reserved - used`` or charge ``used - reserved``; ``None`` (unknown usage) keeps it all."""
        if self._limiter is None or used is None or used == self.reserved:
            return
        limiter, self._limiter = self._limiter, None
        delta = float(abs(self.reserved - used))
        charges = [(k, lim, delta) for k, lim in self._rules]
        try:
            if used < self.reserved:
                limiter.refund(charges)
            else:
                limiter.charge(charges)
                self.record.setdefault("gateway", {})["charged_beyond_reservation"] = used - self.reserved
        except Exception:  # the limiter backend (Redis) failing after the answer: the record still goes out
            log.exception("settling %s tokens for %s failed", delta, self.record.get("account_id"))

    def finish(self, response: dict[str, Any], used: int | None) -> None:
        """Log the exchange with ``response`` and settle its tokens (once; later calls do nothing)."""
        if self.logged:
            return
        self.logged = True
        self.settle(used)
        self.record["response"] = response
        self._write(self.record)

    def reject(self, rej: Reject, used: int | None = 0) -> None:
        """Log a refused or failed exchange (tokens refunded: nothing was generated, unless ``used``)."""
        self.record.setdefault("request", {})
        self.finish({"status": rej.status, "finish_reason": "rejected" if rej.status < 500 else "error",
                     "content": None, "error": rej.log_error(), "latency_ms": self.latency_ms()}, used)


def used_tokens(usage: dict[str, Any] | None) -> int | None:
    """Prompt + output tokens of a logged ``usage`` (None when unknown)."""
    if not usage:
        return None
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
