"""The scan window: the last N whole UTC days of traffic, ending with the day of the newest exchange.

A provider scans a rolling month (``scan --window 30d``): features, links and scores cover the
exchanges of the window's days, older ones stay in the store but no longer count. Whole days,
so that a window is a set of per-day aggregates (``daily``) and a full scan over the same window
reads the same exchanges.

>>> w = Window.parse("30d")
>>> w.days, w.first_day(20_500)
(30, 20471)
>>> w.since(20_500).isoformat()
'2026-01-18T00:00:00+00:00'
>>> Window.parse("48h").days
2
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from distillguard.errors import InputError
from distillguard.store import Store

__all__ = ["ALL_DAYS", "Window", "last_day"]

ALL_DAYS = -(1 << 62)
"""The first day of a window without a start."""
_SPEC = re.compile(r"^\s*(\d+)\s*([dh])\s*$")


@dataclass(frozen=True)
class Window:
    """The last ``days`` UTC days (None: every day in the store)."""

    days: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Window:
        """``30d`` (days) or ``720h`` (whole days of hours); None or empty: no window.

        >>> Window.parse("5h")
        Traceback (most recent call last):
        ...
        distillguard.errors.InputError: window '5h' is not whole days: give e.g. 30d or 24h
        """
        if not text:
            return cls(None)
        match = _SPEC.match(text)
        if not match:
            raise InputError(f"window {text!r} is not a length like 30d or 720h")
        n, unit = int(match.group(1)), match.group(2)
        if unit == "h" and n % 24:
            raise InputError(f"window {text!r} is not whole days: give e.g. 30d or 24h")
        days = n if unit == "d" else n // 24
        if days < 1:
            raise InputError(f"window {text!r} must be at least one day")
        return cls(days)

    def first_day(self, last: int | None) -> int:
        """The window's first day (days since 1970-01-01) when its last is ``last``."""
        if self.days is None or last is None:
            return ALL_DAYS
        return last - self.days + 1

    def since(self, last: int | None) -> datetime | None:
        """When the window begins (None: no window, or no traffic yet)."""
        first = self.first_day(last)
        return None if first == ALL_DAYS else datetime.fromtimestamp(first * 86400, UTC)

    def describe(self) -> str:
        return "every day stored" if self.days is None else f"the last {self.days} day(s)"


def last_day(store: Store) -> int | None:
    """The UTC day (days since 1970-01-01) of the newest exchange in ``store`` (None when empty)."""
    row = store.con.execute("SELECT CAST(floor(epoch_us(max(timestamp)) / 1e6 / 86400.0) AS BIGINT) "
                            "FROM exchanges").fetchone()
    return None if row is None or row[0] is None else int(row[0])
