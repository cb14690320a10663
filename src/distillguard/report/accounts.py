"""The report's account rows: why each account is or is not flagged, and the clusters looked at and cleared.

The clusters that were *not* campaigns (a classroom behind one NAT, a batch fleet on one card)
are what an analyst checks to trust the rest: each is shown with what links it, what stands
out about its members, and which campaign gate it missed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from distillguard.config import LinkSettings, Settings
from distillguard.decide.members import flag_reasons
from distillguard.link.evidence import KINDS
from distillguard.records import Campaign, ScanSummary
from distillguard.report.guidance import scan_settings

_OPTIONAL = {"n_exchanges": pa.int64(), "flagged_alone": pa.bool_(), "flag_reason": pa.string(),
             "link_evidence": pa.list_(pa.string())}


def account_rows(accounts: pa.Table, campaigns: list[Campaign], summary: ScanSummary) -> list[dict[str, Any]]:
    """``accounts.parquet`` as dicts, highest score first, each with ``flag_reason`` and ``findings``.

    Outputs of scans older than the ``flag_reason`` column get it computed here; without
    ``flagged_alone`` a member's own flag is read from its score.
    """
    for name, kind in _OPTIONAL.items():
        if name not in accounts.column_names:
            accounts = accounts.append_column(name, pa.nulls(accounts.num_rows, kind))
    rows = accounts.to_pylist()
    members = {a for c in campaigns for a in c.account_ids}
    if any(r["flagged_alone"] is None for r in rows):
        t = summary.threshold
        own = [bool(r["flagged"]) and (r["account_id"] not in members or (t is not None and (r["score"] or 0) > t))
               if r["flagged_alone"] is None else bool(r["flagged_alone"]) for r in rows]
        accounts = accounts.set_column(accounts.schema.get_field_index("flagged_alone"), "flagged_alone",
                                       pa.array(own, pa.bool_()))
        rows = accounts.to_pylist()
    if any(r["flag_reason"] is None for r in rows):
        why = flag_reasons(accounts, campaigns, threshold=summary.threshold, member_threshold=summary.member_threshold)
        rows = [{**r, "flag_reason": r["flag_reason"] or w} for r, w in zip(rows, why, strict=True)]
    for r in rows:
        # The campaign is in flag_reason already; the findings are the account's own behaviour.
        r["findings"] = [x for x in r["reasons"] or [] if not x.startswith("member of ")]
    return sorted(rows, key=lambda r: (-(r["score"] or 0.0), r["account_id"]))


@dataclass(frozen=True)
class ClusterSummary:
    """A linked cluster that is not a campaign, and why not."""

    cluster_id: str
    accounts: int
    exchanges: int
    score_min: float
    score_max: float
    flagged_alone: int  # members flagged on their own score (throttled, not challenged)
    above_bar: int | None  # members above the member bar (None: no single bar on this scale)
    linked_by: list[tuple[str, int]]  # link evidence label, members holding it
    findings: list[tuple[str, int]]  # most common findings, members with each
    verdict: str


def cleared_clusters(rows: list[dict[str, Any]], campaigns: list[Campaign], *, summary: ScanSummary,
                     limit: int = 30) -> tuple[list[ClusterSummary], int]:
    """The largest ``limit`` clusters that are not campaigns, and how many more there are."""
    taken = {c.cluster_id for c in campaigns} | {a for c in campaigns for a in c.account_ids}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["cluster_id"] is not None and r["cluster_id"] not in taken and r["account_id"] not in taken:
            groups.setdefault(r["cluster_id"], []).append(r)
    order = sorted(groups.items(), key=lambda kv: (-len(kv[1]), -max(r["score"] or 0 for r in kv[1]), kv[0]))
    return [_summary(k, g, summary) for k, g in order[:limit]], max(len(order) - limit, 0)


def _summary(cluster_id: str, rows: list[dict[str, Any]], summary: ScanSummary) -> ClusterSummary:
    n = len(rows)
    scores = [r["score"] or 0.0 for r in rows]
    bar = summary.member_threshold
    above = sum(s > bar for s in scores) if bar is not None else None
    kinds = Counter(k for r in rows for k in set(r["link_evidence"] or []))
    findings = Counter(x.split(" (")[0] for r in rows for x in r["findings"])
    return ClusterSummary(
        cluster_id=cluster_id, accounts=n, exchanges=sum(r["n_exchanges"] or 0 for r in rows),
        score_min=min(scores), score_max=max(scores), flagged_alone=sum(bool(r["flagged_alone"]) for r in rows),
        above_bar=above,
        linked_by=[(KINDS[k].label if k in KINDS else k, v) for k, v in sorted(kinds.items(), key=_most)][:4],
        findings=sorted(findings.items(), key=_most)[:3],
        verdict=_verdict(n, above, (scan_settings(summary) or Settings()).link))


def _verdict(n: int, above: int | None, link: LinkSettings) -> str:
    """Which campaign gate a cluster of ``n`` accounts missed (``above``: members above the member bar)."""
    if n < link.min_campaign_accounts:
        return f"too small: campaigns need {link.min_campaign_accounts} or more linked accounts"
    if above is None:
        return ("missed the campaign gates: too few members above the member bar, or too little harvest "
                "evidence for how unusual they are")
    if above >= link.min_suspicious_share * n:
        return (f"{above} of {n} members are unusual (above the member bar), but the cluster shows too little "
                "harvest evidence: unusual, not harvesting")
    some = f"only {above} of its {n} members are" if above else f"none of its {n} members is"
    return f"{some} above the member bar, and it lacks the harvest evidence the other gates ask for"


def _most(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]


def near_misses(rows: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """The highest-scoring accounts that were not flagged, each with why not."""
    return [r for r in rows if not r["flagged"]][:limit]
