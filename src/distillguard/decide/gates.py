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
from distillguard.link.evidence import INSTRUCTION_KINDS

OPERATION_KINDS = frozenset({"payment", "signup_burst", "template", "template_lsh", "sync", "release", "partner"})
"""Link evidence that ties an account to how a campaign is run (its cards, sign-up bursts, templates,
timing, release chasing). The rest is shared by chance: addresses, networks and client software
(a customer of the proxy or VPN service a campaign rents), an e-mail provider, common opening or closing words."""
MIN_JUDGED_EXCHANGES = 20
"""Exchanges a member needs before its score alone keeps it in a campaign it is tied to only by chance: the
minimum an account needs to be flagged on its own (``detect.min_exchanges``' default), since a handful of
requests is too little to judge. Measured over the detection benchmark's 75 scans: at 5, every benign campaign
member under ten exchanges (5, each a VPN customer's single session on the proxy exits a campaign rents); at
10, chat users of 11 and 14 exchanges on a campaign's exits (one scan at 04be255, three once the release
feature left the kNN features) and 6 attack accounts of 10-19 exchanges; at 20, no benign member, and one
attack account of 12 exchanges (random-campaigns seed 4, in each of its three scans) is no longer flagged."""


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
    min_harvest: float = 0.0, loose_min_harvest: float = 1.1, loose_min_accounts: int = 2,
    coordinated_harvest: float = 1.1, coordinated_accounts: int = 10, edges: pa.Table | None = None,
    carriers: set[str] | None = None,
) -> list[Candidate]:
    """Clusters that become campaigns (``scored``: account rows with ``cluster_id``), by cluster id.

    ``suspicious``: accounts above the member bar (``unusual``: above the looser bar).
    Members that used a partner's indicators count as suspicious whatever their score.
    With ``evidence`` (``detect.harvest``): a cluster whose members are unusual is a campaign
    only if its harvest evidence reaches ``min_harvest`` (a novel classroom or SaaS backend is
    not); most members ``unusual`` (above a looser bar) suffice with evidence of
    ``loose_min_harvest`` in a cluster of ``loose_min_accounts`` or more (smaller: of
    ``coordinated_harvest``); and a cluster of ``coordinated_accounts`` or more whose evidence
    reaches ``coordinated_harvest`` is one even when each member alone looks ordinary.
    A campaign leaves out its passengers (``_passengers``): members tied to it only by evidence
    shared by chance (addresses, client software, an e-mail provider), such as a VPN customer on
    the proxy exits a campaign rents; the gates are decided on the whole cluster. ``edges``
    (``schema.ACCOUNT_LINKS``) tell which members are tied by how the campaign is run. ``carriers``: accounts
    whose own traffic and volume carry harvest evidence (``detect.harvest.harvest_carriers``), never passengers.
    """
    operation = _neighbours(edges, OPERATION_KINDS) if edges is not None else None
    instructions = _neighbours(edges, frozenset(INSTRUCTION_KINDS)) if edges is not None else None
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
        # A small cluster on the looser bar needs the evidence that makes a campaign on its own.
        small = len(rows) < loose_min_accounts
        loose_bar = max(loose_min_harvest, coordinated_harvest) if small else loose_min_harvest
        novel = novel or (loose and h >= loose_bar)
        # No member need look unusual here, so the terms that count only beside unusual ones are left out.
        alone = harvest.alone.score if harvest is not None else h
        coordinated = len(rows) >= coordinated_accounts and alone >= coordinated_harvest
        if not (novel or coordinated):
            continue
        passengers = _passengers(rows, unusual, operation, min_accounts, suspicious, instructions,
                                 min_suspicious_share) - (carriers or set())
        kept = [r for r in rows if r["account_id"] not in passengers]
        if len(kept) >= min_accounts:
            odd = [r for r in odd if r["account_id"] not in passengers]
            out.append(Candidate(cluster_id, kept, odd, harvest, coordinated and not novel))
    return out


def _neighbours(edges: pa.Table, of: frozenset[str]) -> dict[str, set[str]]:
    """Account → the accounts it shares evidence of the kinds ``of`` with (``OPERATION_KINDS``: operation links)."""
    out: dict[str, set[str]] = defaultdict(set)
    for s, d, kinds in zip(edges.column("src").to_pylist(), edges.column("dst").to_pylist(),
                           edges.column("kinds").to_pylist(), strict=True):
        if of.intersection(kinds or []):
            out[s].add(d)
            out[d].add(s)
    return out


def _passengers(rows: list[dict[str, Any]], unusual: set[str] | None,
                operation: dict[str, set[str]] | None, min_accounts: int,
                suspicious: set[str] | None = None, instructions: dict[str, set[str]] | None = None,
                majority: float = 1.1) -> set[str]:
    """Members that ride along: ordinary alone and tied to the rest only by evidence shared by chance.

    With ``operation`` (``_neighbours`` by ``OPERATION_KINDS``): when groups of at least ``min_accounts`` members
    are tied to each other by how the campaign is run (cards, sign-up bursts, templates, timing), a
    member outside that core stays only if it is above the member bar (in ``suspicious``), flagged
    on its own, or above the looser bar and sharing recurring instructions with the core
    (``instructions``: account → the accounts it shares them with): a VPN customer on the exits
    the campaign rents is not one of its accounts, nor are two such customers who share an
    instruction with each other. A cluster tied by shared routes alone (a datacenter proxy pool,
    residential exits) keeps, when at least ``majority`` of its members are above the member bar,
    those members and the ones tied to them along operation links or, above the looser bar, by
    shared instructions (two VPN customers on the exits were kept for being above the looser
    bar: random-campaigns seed 5); otherwise the members above the looser bar (in ``unusual``)
    and those tied to them along operation links. A member's score counts here only from
    ``MIN_JUDGED_EXCHANGES`` exchanges up.
    """
    if unusual is None:
        return set()  # without a member bar every member stays
    ids = {r["account_id"] for r in rows}
    # A score from a handful of requests does not keep a member on its own (``MIN_JUDGED_EXCHANGES``).
    suspicious = {r["account_id"] for r in rows if r["account_id"] in (suspicious or set())
                  and (r.get("n_exchanges") is None or r["n_exchanges"] >= MIN_JUDGED_EXCHANGES)}
    own = {r["account_id"] for r in rows if r.get("flagged_alone", r.get("flagged")) or r.get("partner_indicators")}
    by_evidence = {r["account_id"] for r in rows if _passenger(r, unusual)}
    if operation is None:
        return by_evidence
    core = _operation_core(ids, operation, min_accounts)
    if core:
        # Sharing the campaign's recurring instructions counts for members above the looser bar.
        instructed = {r["account_id"] for r in rows if r["account_id"] in unusual
                      and (instructions or {}).get(r["account_id"], set()) & core}
        return ids - core - own - suspicious - instructed
    strong = ids & suspicious
    if strong and len(strong) >= majority * len(ids):
        tied = strong | (own & ids)
        tied |= {a for a in ids - tied if a in unusual and (instructions or {}).get(a, set()) & tied}
        ordinary = ids - tied
    else:
        ordinary = {r["account_id"] for r in rows
                    if not r.get("partner_indicators") and r["account_id"] not in unusual}
        tied = ids - ordinary or ids - by_evidence
    grown = True
    while grown:
        grown = False
        for a in sorted(ordinary - tied):
            if operation.get(a, set()) & tied:
                tied.add(a)
                grown = True
    return ordinary - tied


def _operation_core(ids: set[str], operation: dict[str, set[str]], min_accounts: int) -> set[str]:
    """Members in groups of at least ``min_accounts`` joined by operation links inside the cluster
    (two chat users on one popular template are not a core)."""
    core: set[str] = set()
    seen: set[str] = set()
    for start in sorted(ids):
        if start in seen:
            continue
        group, todo = {start}, [start]
        while todo:
            for b in operation.get(todo.pop(), set()) & ids:
                if b not in group:
                    group.add(b)
                    todo.append(b)
        seen |= group
        if len(group) >= min_accounts:
            core |= group
    return core


def _passenger(row: dict[str, Any], unusual: set[str] | None) -> bool:
    """A member ordinary alone and tied to its cluster by nothing in ``OPERATION_KINDS``: a customer
    of the proxy or VPN service the campaign rents, not one of its accounts.

    >>> _passenger({"account_id": "a", "link_evidence": ["ip", "tls", "email_domain"]}, set())
    True
    >>> _passenger({"account_id": "a", "link_evidence": ["ip", "payment"]}, set())
    False
    """
    if unusual is None or row.get("partner_indicators") or row["account_id"] in unusual:
        return False  # without a looser bar every member stays
    kinds = row.get("link_evidence") or []
    return bool(kinds) and not OPERATION_KINDS.intersection(kinds)
