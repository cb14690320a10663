"""Decide stage: map scores and campaigns to gateway actions with reasons and expiry.

Rules (kept deliberately simple and explicit):
- every campaign's cluster gets ``challenge`` (step-up verification), which the
  gateway applies to all members, including accounts linked to it later;
- a flagged account outside any campaign gets ``throttle``.
Expiry is ``as_of + ttl`` where ``as_of`` is the last exchange seen, so the same
input always yields the same table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from distillguard.schema import POLICY


def decide(
    scores: pa.Table, campaigns: list[dict[str, Any]], as_of: datetime, ttl_days: float
) -> pa.Table:
    """The policy table (``schema.POLICY``)."""
    expires = as_of + timedelta(days=ttl_days)
    rows = []
    in_campaign = set()
    for c in campaigns:
        in_campaign.update(c["account_ids"])
        rows.append({
            "subject_type": "cluster", "subject_id": c["cluster_id"], "action": "challenge",
            "reason": f"{c['campaign_id']}: {len(c['account_ids'])} linked accounts, "
                      f"score {c['score']:.2f}",
            "expires_at": expires,
        })
    for row in scores.to_pylist():
        if row["flagged"] and row["account_id"] not in in_campaign:
            rows.append({
                "subject_type": "account", "subject_id": row["account_id"], "action": "throttle",
                "reason": "; ".join(row["reasons"] or []) or f"score {row['score']:.2f}",
                "expires_at": expires,
            })
    return pa.Table.from_pylist(rows, schema=POLICY)
