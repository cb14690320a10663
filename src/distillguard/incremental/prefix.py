"""The per-day aggregates of a store's exchanges before a time that only moves forward (replay).

Replay decides once per window over every exchange before the window's end. Computed from
the exchanges, each window costs the whole prefix, and a replay the traffic times the number
of windows (418 s for 337 hourly windows of 322k exchanges). ``Prefix.advance`` adds one
window instead: the (account, day) pairs the window's exchanges fall in are aggregated again
from their rows before the end (``daily.refresh``), and only those accounts' features are
merged again (``merge``); links read the aggregates (``links``). A step costs about the
traffic of the days it touches, so a replay's per-exchange work grows with the traffic
(times the windows in a day), not with traffic × windows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from distillguard.incremental import daily
from distillguard.incremental.fresh import TOUCHED
from distillguard.incremental.merge import merged_features
from distillguard.incremental.window import ALL_DAYS
from distillguard.schema import ACCOUNT_FEATURES
from distillguard.stages import rounded
from distillguard.store import Store

__all__ = ["Prefix"]


class Prefix:
    """Aggregates of ``store``'s exchanges before ``end``, and the features of its accounts.

    ``temporary``: in temporary tables (a reference store, whose own tables stay as prepared).
    """

    def __init__(self, store: Store, *, temporary: bool = False) -> None:
        self.store = store
        daily.create_tables(store, temporary=temporary)
        daily.clear(store)
        self.end: datetime | None = None
        self.features = ACCOUNT_FEATURES.empty_table()

    def advance(self, end: datetime) -> int:
        """Add the exchanges from the previous end to ``end``; returns the (account, day) pairs aggregated again."""
        if self.end is not None and end <= self.end:
            return 0
        since = "" if self.end is None else f"timestamp >= {_ts(self.end)} AND "
        con = self.store.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TOUCHED} AS SELECT DISTINCT account_id, day_index AS day "
                    f"FROM signals WHERE {since}timestamp < {_ts(end)}")
        pairs = daily.refresh(self.store, TOUCHED, before=end)
        if pairs:
            changed = rounded(merged_features(self.store, ALL_DAYS, TOUCHED)).cast(ACCOUNT_FEATURES)
            kept = self.features.filter(pc.invert(pc.is_in(self.features.column("account_id"),
                                                           changed.column("account_id"))))
            self.features = pa.concat_tables([kept, changed]).sort_by("account_id")
        self.end = end
        return pairs


def _ts(t: datetime) -> str:
    return f"TIMESTAMPTZ '{t.astimezone(UTC).isoformat()}'"
