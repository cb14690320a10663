"""The policy table: scores and campaigns → gateway actions with reasons and expiry.

Rules (kept deliberately simple and explicit):
- every campaign's cluster gets ``challenge`` (step-up verification), which the
  gateway applies to all members, including accounts linked to it later;
- a flagged account outside any campaign gets ``throttle``.
A decision expires ``ttl`` after it is made: the scan's clock (``now``), or the
last exchange seen (``as_of``) when that is later. Counting from the data's own dates
made a scan of last month's logs write a policy that had expired before the gateway
loaded it. Tests pass ``now``; everything else in the table depends on the input
only. ``policy_records`` is the same table in the gateway's format (``policy.json``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from distillguard.records import Campaign, PolicyRecord
from distillguard.schema import POLICY


def policy_table(
    scores: pa.Table, campaigns: list[Campaign], *, as_of: datetime, ttl_days: float, now: datetime | None = None,
) -> pa.Table:
    """The policy table (``schema.POLICY``): one row per campaign cluster, then per flagged account outside.

    Rows expire ``ttl_days`` after the decision: ``now`` (default: the wall clock, to the second) or ``as_of``
    (the last exchange seen), whichever is later.

    >>> from datetime import UTC
    >>> scores = pa.table({"account_id": ["a"], "score": [9.0], "flagged": [True], "reasons": [["r"]]})
    >>> row = policy_table(scores, [], as_of=datetime(2026, 2, 8, tzinfo=UTC), ttl_days=7,
    ...                    now=datetime(2026, 12, 1, tzinfo=UTC)).to_pylist()[0]
    >>> row["action"], row["expires_at"].isoformat()
    ('throttle', '2026-12-08T00:00:00+00:00')
    """
    decided = max(now or datetime.now(UTC).replace(microsecond=0), as_of)
    expires = decided + timedelta(days=ttl_days)
    rows = []
    in_campaign = set()
    for c in campaigns:
        in_campaign.update(c.account_ids)
        rows.append({
            "subject_type": "cluster", "subject_id": c.cluster_id, "action": "challenge",
            "reason": f"{c.campaign_id}: {len(c.account_ids)} linked accounts, score {c.score:.2f}",
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


def policy_records(policy: pa.Table, campaigns: list[Campaign]) -> list[PolicyRecord]:
    """The policy as the gateway loads it: ``subject`` ``account:ID`` or ``cluster:ID``, action,
    reason, ``expires_at``, and for clusters their ``members`` at scan time.

    A cluster's action applies to every member; the gateway also applies it to
    accounts a later scan links into the cluster.

    >>> from datetime import datetime, UTC
    >>> t = pa.table({"subject_type": ["cluster"], "subject_id": ["cluster-0001"], "action": ["challenge"],
    ...               "reason": ["r"], "expires_at": [datetime(2026, 2, 15, tzinfo=UTC)]})
    >>> campaign = Campaign.model_validate({"campaign_id": "campaign-0001", "cluster_id": "cluster-0001",
    ...     "account_ids": ["a", "b"], "exchange_count": 2, "score": 0.5, "capabilities": {},
    ...     "first_seen": "2026-02-02T00:00:00+00:00", "last_seen": "2026-02-08T00:00:00+00:00", "evidence": []})
    >>> record = policy_records(t, [campaign])[0].as_json()
    >>> list(record), record["members"]
    (['subject', 'action', 'reason', 'expires_at', 'members'], ['a', 'b'])
    >>> record["subject"], record["expires_at"]
    ('cluster:cluster-0001', '2026-02-15T00:00:00+00:00')
    """
    members = {c.cluster_id: c.account_ids for c in campaigns}
    out = []
    for r in policy.to_pylist():
        subject = f"{r['subject_type']}:{r['subject_id']}"
        if r["subject_type"] == "cluster":
            out.append(PolicyRecord(subject=subject, action=r["action"], reason=r["reason"],
                                    expires_at=r["expires_at"], members=members.get(r["subject_id"], [])))
        else:
            out.append(PolicyRecord(subject=subject, action=r["action"], reason=r["reason"],
                                    expires_at=r["expires_at"]))
    return out
