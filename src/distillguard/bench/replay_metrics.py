"""Time-to-detect from a replay (``distillguard replay``) and the labels.

>>> import datetime as dt, pyarrow as pa
>>> t = [dt.datetime(2026, 2, 1, h, tzinfo=dt.UTC) for h in (1, 1, 2, 2)]
>>> states = pa.table({"window_end": t, "account_id": ["a", "b", "a", "b"],
...                    "n_exchanges": [5, 5, 50, 50], "flagged": [False, False, True, False]})
>>> m = campaign_detection_times(states, {"a": "c1", "b": "c1"})
>>> m["c1"]["exchanges_before_flag"], m["c1"]["share_before_flag"], m["c1"]["hours_to_detect"]
(100, 1.0, 1.0)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any

import pyarrow as pa


def campaign_detection_times(states: pa.Table, campaign_of: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per campaign: first flag time, hours from its first activity, and traffic sent by then."""
    by_window: dict[datetime, dict[str, tuple[int, bool]]] = defaultdict(dict)
    for row in states.to_pylist():
        if row["account_id"] in campaign_of:
            by_window[row["window_end"]][row["account_id"]] = (row["n_exchanges"] or 0, bool(row["flagged"]))
    windows = sorted(by_window)
    totals: dict[str, int] = defaultdict(int)
    if windows:
        for account, (n, _) in by_window[windows[-1]].items():
            totals[campaign_of[account]] += n
    out: dict[str, dict[str, Any]] = {}
    for campaign in sorted(set(campaign_of.values())):
        start = flagged_at = None
        sent = 0
        for w in windows:
            members = {a: v for a, v in by_window[w].items() if campaign_of[a] == campaign}
            if members and start is None:
                start = w
            if any(f for _, f in members.values()):
                flagged_at, sent = w, sum(n for n, _ in members.values())
                break
        total = totals.get(campaign, 0)
        out[campaign] = {
            "first_flagged_at": flagged_at.isoformat() if flagged_at else None,
            "hours_to_detect": (flagged_at - start).total_seconds() / 3600 if flagged_at and start else None,
            "exchanges_before_flag": sent if flagged_at else None,
            "share_before_flag": sent / total if flagged_at and total else None,
            "total_exchanges": total,
        }
    return out


def replay_summary(states: pa.Table, campaign_of: dict[str, str]) -> dict[str, Any]:
    """Campaign times plus medians (undetected campaigns count as share 1.0)."""
    per = campaign_detection_times(states, campaign_of)
    shares = [v["share_before_flag"] if v["share_before_flag"] is not None else 1.0 for v in per.values()]
    hours = [v["hours_to_detect"] for v in per.values() if v["hours_to_detect"] is not None]
    return {
        "campaigns": per,
        "median_share_before_flag": median(shares) if shares else None,
        "median_hours_to_detect": median(hours) if hours else None,
        "detected": sum(v["first_flagged_at"] is not None for v in per.values()),
    }
