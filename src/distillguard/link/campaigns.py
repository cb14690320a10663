"""Turn clusters of suspicious accounts into campaign records (``campaigns.json``).

A cluster becomes a campaign when it has at least ``min_accounts`` members and
at least ``min_suspicious_share`` of them score above ``suspicious_above``, a
bar looser than the per-account flag threshold: group evidence lets each member
be less extreme (hydra clusters spread volume thin), while a classroom behind
one NAT stays a cluster, not a campaign, unless most members look like harvesters.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pyarrow as pa


def build_campaigns(
    scored: pa.Table,
    capability_counts: pa.Table,
    *,
    min_accounts: int,
    min_suspicious_share: float,
    suspicious_above: float,
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
        suspicious = [r for r in rows if r["score"] > suspicious_above]
        if len(rows) < min_accounts or len(suspicious) < min_suspicious_share * len(rows):
            continue
        campaigns.append(_record(cluster_id, rows, suspicious, caps))
    campaigns.sort(key=lambda c: (-c["score"], c["campaign_id"]))
    return campaigns


def _record(cluster_id: str, rows: list[dict[str, Any]], suspicious: list[dict[str, Any]],
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
    findings: dict[str, int] = defaultdict(int)  # member reasons with their numbers masked
    for r in suspicious:
        for reason in r["reasons"] or []:
            findings[_NUMBER.sub("N", reason.split(" (")[0])] += 1
    flagged = sum(1 for r in rows if r["flagged"])
    score = sum(r["score"] for r in rows) / len(rows)
    evidence = [
        f"{len(rows)} linked accounts sent {total:,} exchanges; {len(suspicious)} of them "
        f"({len(suspicious) / len(rows):.0%}) behave unusually and {flagged} are flagged on their own.",
        *(f"{n} accounts are linked by shared {_KIND_NAMES.get(k, k)}." for k, n in sorted(kinds.items())),
    ]
    common = sorted(findings.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if common:
        evidence.append("Most common member findings: " + "; ".join(f"{k} ({n} accounts)" for k, n in common) + ".")
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


_NUMBER = re.compile(r"\d[\d,.]*")
_KIND_NAMES = {"ip": "client IP addresses", "payment": "payment fingerprints",
               "template": "dominant prompt templates"}
