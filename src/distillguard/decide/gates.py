"""Which linked clusters become campaigns: the gates.

A cluster becomes a campaign when it has at least ``min_accounts`` members and at least
``min_suspicious_share`` of them score above ``suspicious`` (the member bar), a bar looser
than the per-account flag threshold: group evidence lets each member be less extreme (hydra
clusters spread volume thin), while a classroom behind one NAT stays a cluster, not a
campaign, unless most members look like harvesters.

>>> rows = pa.table({"account_id": ["a", "b", "c"], "cluster_id": ["k1", "k1", None]})
>>> [c.cluster_id for c in select_campaigns(rows, min_accounts=2, min_suspicious_share=0.5, suspicious={"a"})]
['k1']
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from distillguard.detect.harvest import HarvestEvidence


@dataclass(frozen=True)
class Candidate:
    """A cluster that qualifies as a campaign, with its member rows (``members.account_view``)."""

    cluster_id: str
    rows: list[dict[str, Any]]
    suspicious: list[dict[str, Any]]
    harvest: HarvestEvidence | None = None
    coordinated: bool = False  # a campaign by its harvest evidence and links alone


def select_campaigns(
    scored: pa.Table, *, min_accounts: int, min_suspicious_share: float, suspicious: set[str],
    unusual: set[str] | None = None, evidence: dict[str, HarvestEvidence] | None = None,
    min_harvest: float = 0.0, loose_min_harvest: float = 1.1,
    coordinated_harvest: float = 1.1, coordinated_accounts: int = 10,
) -> list[Candidate]:
    """Clusters that become campaigns (``scored``: account rows with ``cluster_id``), by cluster id.

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
