"""Turn clusters of suspicious accounts into campaign records (``campaigns.json``).

A cluster becomes a campaign when it has at least ``min_accounts`` members and
at least ``min_suspicious_share`` of them score above ``suspicious_above``, a
bar looser than the per-account flag threshold: group evidence lets each member
be less extreme (hydra clusters spread volume thin), while a classroom behind
one NAT stays a cluster, not a campaign, unless most members look like harvesters.

The campaign score is in [0, 1]::

    score = suspicious share × (0.4 + 0.2·size + 0.2·density + 0.2·evidence)

with size = 1 − 1/√members, density the share of member pairs directly linked,
and evidence = mean link weight / 2 (capped at 1; rarity-weighted, see
``link.graph``). Member suspicion gates it; the rest ranks campaigns by how
large, tight and rare their shared evidence is.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from distillguard.detect.harvest import HarvestEvidence
from distillguard.link.evidence import KINDS


@dataclass(frozen=True)
class Candidate:
    """A cluster that qualifies as a campaign, with its member rows."""

    cluster_id: str
    rows: list[dict[str, Any]]
    suspicious: list[dict[str, Any]]
    harvest: HarvestEvidence | None = None
    coordinated: bool = False  # a campaign by its harvest evidence and links alone


@dataclass
class CampaignDetails:
    """What the store knows about one cluster's traffic (see ``link.details``)."""

    capabilities: dict[str, int] = field(default_factory=dict)  # exchanges per capability area
    infrastructure: list[dict[str, Any]] = field(default_factory=list)  # values shared by 2+ members
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (hour, exchanges)
    edges: list[tuple[str, str, float, list[str]]] = field(default_factory=list)
    release: dict[str, Any] | None = None  # {"model", "released_at", "share_24h"}


def select_campaigns(
    scored: pa.Table, *, min_accounts: int, min_suspicious_share: float, suspicious: set[str],
    unusual: set[str] | None = None, evidence: dict[str, HarvestEvidence] | None = None,
    min_harvest: float = 0.0, loose_min_harvest: float = 1.1,
    coordinated_harvest: float = 1.1, coordinated_accounts: int = 10,
) -> list[Candidate]:
    """Clusters that become campaigns (``scored``: account rows with ``cluster_id``).

    ``suspicious``: accounts above the member bar (``unusual``: above the looser bar).
    Members that used a partner's indicators count as suspicious whatever their score.
    With ``evidence`` (``detect.harvest``): a cluster whose members are unusual is a campaign
    only if its harvest evidence reaches ``min_harvest`` (a novel classroom or SaaS backend is
    not); most members ``unusual`` (above a looser bar) suffice with evidence of
    ``loose_min_harvest``; and a cluster of ``coordinated_accounts`` or more whose evidence
    reaches ``coordinated_harvest`` is one even when each member alone looks ordinary.
    """
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scored.to_pylist():
        if row["cluster_id"] is not None:
            members[row["cluster_id"]].append(row)
    out = []
    for cluster_id, rows in sorted(members.items()):
        # A partner's indicator on a member is evidence as strong as its own behaviour.
        odd = [r for r in rows if r["account_id"] in suspicious or r.get("partner_indicators")]
        harvest = evidence.get(cluster_id) if evidence is not None else None
        h = harvest.score if harvest is not None else (1.0 if evidence is None else 0.0)
        partner = any(r.get("partner_indicators") for r in rows)
        novel = len(odd) >= min_suspicious_share * len(rows) and (h >= min_harvest or partner)
        loose = sum(r["account_id"] in (unusual or set()) for r in rows) >= min_suspicious_share * len(rows)
        novel = novel or (loose and h >= loose_min_harvest)
        coordinated = len(rows) >= coordinated_accounts and h >= coordinated_harvest
        if len(rows) >= min_accounts and (novel or coordinated):
            out.append(Candidate(cluster_id, rows, odd, harvest, coordinated and not novel))
    return out


def build_campaigns(candidates: list[Candidate], details: dict[str, CampaignDetails]) -> list[dict[str, Any]]:
    """Campaign records, highest score first."""
    records = [campaign_record(c, details.get(c.cluster_id, CampaignDetails())) for c in candidates]
    records.sort(key=lambda r: (-r["score"], r["campaign_id"]))
    return records


def campaign_record(c: Candidate, d: CampaignDetails) -> dict[str, Any]:
    rows = c.rows
    n = len(rows)
    total = sum(r["n_exchanges"] or 0 for r in rows)
    density = 2 * len(d.edges) / (n * (n - 1)) if n > 1 else 0.0
    mean_weight = float(np.mean([e[2] for e in d.edges])) if d.edges else 0.0
    suspicious_share = len(c.suspicious) / n
    # A campaign by coordination alone is gated by its harvest evidence instead of member suspicion.
    gate = max(suspicious_share, c.harvest.score if c.coordinated and c.harvest is not None else 0.0)
    score = gate * (0.4 + 0.2 * (1 - 1 / math.sqrt(n)) + 0.2 * min(density, 1.0)
                                + 0.2 * min(mean_weight / 2, 1.0))
    volumes = np.array([r["n_exchanges"] or 0 for r in rows], dtype=np.float64)
    volume_cv = float(volumes.std() / volumes.mean()) if volumes.mean() > 0 else 0.0
    cap_total = sum(d.capabilities.values()) or 1
    capabilities = {k: round(v / cap_total, 4) for k, v in sorted(d.capabilities.items(), key=lambda kv: -kv[1])}
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        for k in r["link_evidence"] or []:
            kinds[k] += 1
    first = min(r["first_seen"] for r in rows)
    last = max(r["last_seen"] for r in rows)
    return {
        "campaign_id": f"campaign-{c.cluster_id.removeprefix('cluster-')}",
        "cluster_id": c.cluster_id,
        "account_ids": sorted(r["account_id"] for r in rows),
        "exchange_count": total,
        "score": round(score, 4),
        "capabilities": capabilities,
        "first_seen": first.isoformat(),
        "last_seen": last.isoformat(),
        "evidence": _evidence(c, d, total, first, last, dict(kinds), capabilities, volume_cv, density, mean_weight),
        "shared_evidence": dict(sorted(kinds.items())),
        "suspicious_share": round(suspicious_share, 4),
        "harvest_evidence": None if c.harvest is None else {
            "score": round(c.harvest.score, 4), "shares": {k: round(v, 4) for k, v in c.harvest.shares.items()}},
        "coordinated": c.coordinated,
        "member_score_mean": round(float(np.mean([r["score"] for r in rows])), 4),
        "volume_cv": round(volume_cv, 4),
        "graph": {"accounts": n, "links": len(d.edges), "density": round(density, 4),
                  "mean_weight": round(mean_weight, 4),
                  "edges": [[s, t, round(w, 3), k] for s, t, w, k in d.edges]},
        "infrastructure": d.infrastructure,
        "timeline": [[h, k] for h, k in d.timeline],
        "release_pivot": d.release,
    }


def _evidence(
    c: Candidate, d: CampaignDetails, total: int, first: datetime, last: datetime, kinds: dict[str, int],
    capabilities: dict[str, float], volume_cv: float, density: float, mean_weight: float,
) -> list[str]:
    n = len(c.rows)
    flagged = sum(1 for r in c.rows if r["flagged"])
    days = max((last - first).total_seconds() / 86400, 1 / 24)
    out = [
        f"{n} linked accounts sent {total:,} exchanges over {days:.1f} days (about {total / n:,.0f} per account); "
        f"{len(c.suspicious)} of them ({len(c.suspicious) / n:.0%}) behave unlike benign customers and {flagged} "
        "are flagged on their own."
    ]
    if c.harvest is not None and c.harvest.reasons:
        out.append(("Acts together as a harvester even though most members look ordinary alone: " if c.coordinated
                    else "Harvest evidence: ") + "; ".join(c.harvest.reasons)
                   + f" (score {c.harvest.score:.2f}).")
    if kinds:
        out.append("Linked by " + "; ".join(
            f"{KINDS[k].label if k in KINDS else k} ({v} accounts)"
            for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))) + ".")
    if d.edges:
        out.append(f"{len(d.edges):,} links among the {n} accounts (density {density:.2f}, mean rarity-weighted "
                   f"evidence {mean_weight:.2f}).")
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in d.infrastructure:
        by_kind[item["kind"]].append(item)
    for kind, items in sorted(by_kind.items()):
        top = items[0]
        out.append(f"{len(items)} {_INFRA_NAMES.get(kind, kind)} used by two or more members; the most shared, "
                   f"{top['value']}, by {top['accounts']} accounts.")
    if n >= 3 and volume_cv < 0.35:
        out.append(f"Traffic is spread evenly over the accounts (volume CV {volume_cv:.2f}), as load balancing "
                   "across accounts does.")
    if d.release and d.release.get("share_24h", 0) >= 0.3:
        out.append(f"{d.release['share_24h']:.0%} of its traffic in the 24 h after {d.release['model']} was released "
                   f"({d.release['released_at']}) went to the new model.")
    if capabilities:
        top_cap, share = next(iter(capabilities.items()))
        out.append(f"{share:.0%} of the traffic targets {top_cap}.")
    findings: dict[str, int] = defaultdict(int)  # member reasons with their numbers masked
    for r in c.suspicious:
        for reason in r["reasons"] or []:
            findings[_NUMBER.sub("N", reason.split(" (")[0])] += 1
    common = sorted(findings.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if common:
        out.append("Most common member findings: " + "; ".join(f"{k} ({v} accounts)" for k, v in common) + ".")
    return out


_NUMBER = re.compile(r"\d[\d,.]*")
_INFRA_NAMES = {"ip": "client IP addresses", "asn": "ASNs", "user_agent": "user agents",
                "tls": "TLS fingerprints", "payment": "payment fingerprints"}
