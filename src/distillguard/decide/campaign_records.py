"""Campaign records (``records.Campaign``) from the clusters that passed the gates and their details.

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
from datetime import datetime

import numpy as np

from distillguard.decide.details import CampaignDetails
from distillguard.decide.gates import Candidate
from distillguard.link.evidence import KINDS
from distillguard.records import Campaign, CampaignGraph, HarvestScore, SharedValue


def build_campaigns(candidates: list[Candidate], details: dict[str, CampaignDetails]) -> list[Campaign]:
    """Campaign records, highest score first."""
    records = [campaign_record(c, details.get(c.cluster_id, CampaignDetails())) for c in candidates]
    records.sort(key=lambda r: (-r.score, r.campaign_id))
    return records


def campaign_record(c: Candidate, d: CampaignDetails) -> Campaign:
    """The record of one candidate, with what the store knows about its traffic (``d``)."""
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
    return Campaign(
        campaign_id=f"campaign-{c.cluster_id.removeprefix('cluster-')}",
        cluster_id=c.cluster_id,
        account_ids=sorted(r["account_id"] for r in rows),
        exchange_count=total,
        score=round(score, 4),
        capabilities=capabilities,
        first_seen=first,
        last_seen=last,
        evidence=_evidence(c, d, total, first, last, dict(kinds), capabilities, volume_cv, density, mean_weight),
        shared_evidence=dict(sorted(kinds.items())),
        suspicious_share=round(suspicious_share, 4),
        harvest_evidence=None if c.harvest is None else HarvestScore(
            score=round(c.harvest.score, 4), shares={k: round(v, 4) for k, v in c.harvest.shares.items()}),
        coordinated=c.coordinated,
        member_score_mean=round(float(np.mean([r["score"] for r in rows])), 4),
        volume_cv=round(volume_cv, 4),
        graph=CampaignGraph(accounts=n, links=len(d.edges), density=round(density, 4),
                            mean_weight=round(mean_weight, 4),
                            edges=[(s, t, round(w, 3), k) for s, t, w, k in d.edges]),
        infrastructure=d.infrastructure,
        timeline=d.timeline,
        release_pivot=d.release,
    )


def _evidence(
    c: Candidate, d: CampaignDetails, total: int, first: datetime, last: datetime, kinds: dict[str, int],
    capabilities: dict[str, float], volume_cv: float, density: float, mean_weight: float,
) -> list[str]:
    """The findings, as sentences with their numbers."""
    n = len(c.rows)
    flagged = sum(1 for r in c.rows if r["flagged"])
    days = max((last - first).total_seconds() / 86400, 1 / 24)
    out = [
        f"{_plural(n, 'linked account')} sent {total:,} exchanges over {days:.1f} days (about {total / n:,.0f} per "
        f"account); {len(c.suspicious)} of them ({len(c.suspicious) / n:.0%}) behave unlike benign customers and "
        + ("none is flagged on its own." if flagged == 0 else "1 is flagged on its own." if flagged == 1
           else f"{flagged} are flagged on their own.")
    ]
    if c.harvest is not None and c.harvest.reasons:
        out.append(("Acts together as a harvester even though most members look ordinary alone: " if c.coordinated
                    else "Harvest evidence: ") + "; ".join(c.harvest.reasons)
                   + f" (score {c.harvest.score:.2f}).")
    if kinds:
        out.append("Linked by " + "; ".join(
            f"{KINDS[k].label if k in KINDS else k} ({_plural(v, 'account')})"
            for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))) + ".")
    if d.edges:
        out.append(f"{len(d.edges):,} links among the {n} accounts (density {density:.2f}, mean rarity-weighted "
                   f"evidence {mean_weight:.2f}).")
    by_kind: dict[str, list[SharedValue]] = defaultdict(list)
    for item in d.infrastructure:
        by_kind[item.kind].append(item)
    for kind, items in sorted(by_kind.items()):
        top = items[0]
        singular, plural = _INFRA_NAMES.get(kind, (kind, kind))
        out.append(f"{len(items)} {singular if len(items) == 1 else plural} used by two or more members; "
                   f"the most shared, {top.value}, by {_plural(top.accounts, 'account')}.")
    if n >= 3 and volume_cv < 0.35:
        out.append(f"Traffic is spread evenly over the accounts (volume CV {volume_cv:.2f}), as load balancing "
                   "across accounts does.")
    if d.release and d.release.share_24h >= 0.3:
        out.append(f"{d.release.share_24h:.0%} of its traffic in the 24 h after {d.release.model} was released "
                   f"({d.release.released_at}) went to the new model.")
    if capabilities:
        top_cap, share = next(iter(capabilities.items()))
        out.append(f"{share:.0%} of the traffic targets {top_cap}.")
    findings: dict[str, int] = defaultdict(int)  # member reasons with their numbers masked
    for r in c.suspicious:
        for reason in r["reasons"] or []:
            findings[_NUMBER.sub("N", reason.split(" (")[0])] += 1
    common = sorted(findings.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if common:
        out.append("Most common member findings: " + "; ".join(f"{k} ({_plural(v, 'account')})" for k, v in common)
                   + ".")
    return out


_NUMBER = re.compile(r"\d[\d,.]*")
_INFRA_NAMES = {"ip": ("client IP address", "client IP addresses"), "asn": ("ASN", "ASNs"),
                "user_agent": ("user agent", "user agents"), "tls": ("TLS fingerprint", "TLS fingerprints"),
                "payment": ("payment fingerprint", "payment fingerprints")}


def _plural(n: int, noun: str) -> str:
    """``1 account``, ``3 accounts``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
