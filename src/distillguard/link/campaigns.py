"""Turn clusters of suspicious accounts into campaign records (``campaigns.json``).

A cluster becomes a campaign when it has at least ``min_accounts`` members and
at least ``min_flagged_share`` of them are flagged: a classroom behind one NAT
is a cluster, but not a campaign unless its members behave like harvesters.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa


def build_campaigns(
    scored: pa.Table,
    capability_counts: pa.Table,
    *,
    min_accounts: int,
    min_flagged_share: float,
) -> list[dict[str, Any]]:
    """Campaign records, highest score first.

    ``scored`` has per account: account_id, score, flagged, cluster_id,
    link_evidence, n_exchanges, first_seen, last_seen, reasons.
    ``capability_counts`` has account_id, capability, n.
    """
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scored.to_pylist():
        if row["cluster_id"] is not None:
            members[row["cluster_id"]].append(row)
    caps: dict[str, dict[str, int]] = defaultdict(dict)
    for row in capability_counts.to_pylist():
        caps[row["account_id"]][row["capability"]] = row["n"]
    campaigns = []
    for cluster_id, rows in members.items():
        flagged = [r for r in rows if r["flagged"]]
        if len(rows) < min_accounts or len(flagged) < min_flagged_share * len(rows):
            continue
        campaigns.append(_record(cluster_id, rows, flagged, caps))
    campaigns.sort(key=lambda c: (-c["score"], c["campaign_id"]))
    return campaigns


def _record(cluster_id: str, rows: list[dict[str, Any]], flagged: list[dict[str, Any]],
            caps: dict[str, dict[str, int]]) -> dict[str, Any]:
    total = sum(r["n_exchanges"] for r in rows)
    cap_totals: dict[str, int] = defaultdict(int)
    for r in rows:
        for cap, n in caps.get(r["account_id"], {}).items():
            cap_totals[cap] += n
    capabilities = {c: round(n / total, 4) for c, n in sorted(cap_totals.items(), key=lambda x: -x[1])}
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        for k in r["link_evidence"] or []:
            kinds[k] += 1
    reasons: dict[str, int] = defaultdict(int)
    for r in flagged:
        for reason in r["reasons"] or []:
            reasons[reason.split(" (")[0].split(" ")[0]] += 1
    score = sum(r["score"] for r in rows) / len(rows)
    evidence = [
        f"{len(rows)} linked accounts sent {total:,} exchanges; {len(flagged)} of them "
        f"({len(flagged) / len(rows):.0%}) are flagged individually.",
        *(f"{n} accounts are linked by shared {_KIND_NAMES.get(k, k)}." for k, n in sorted(kinds.items())),
    ]
    if capabilities:
        top, share = next(iter(capabilities.items()))
        evidence.append(f"{share:.0%} of the traffic targets {top}.")
    return {
        "campaign_id": f"campaign-{cluster_id.removeprefix('cluster-')}",
        "cluster_id": cluster_id,
        "account_ids": sorted(r["account_id"] for r in rows),
        "exchange_count": total,
        "score": round(score, 4),
        "capabilities": capabilities,
        "first_seen": min(r["first_seen"] for r in rows).isoformat(),
        "last_seen": max(r["last_seen"] for r in rows).isoformat(),
        "shared_evidence": dict(sorted(kinds.items())),
        "evidence": evidence,
    }


_KIND_NAMES = {"ip": "client IP addresses", "payment": "payment fingerprints",
               "template": "dominant prompt templates"}
