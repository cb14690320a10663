"""What each page shows: the template context of the queue, a campaign, an account and the audit table.

The pictures are the report's (``report.charts``): the same graph and timeline an analyst knows from
``report.html``, drawn on the server as SVG.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from markupsafe import Markup

from distillguard.console.decisions import Decision
from distillguard.console.effects import effective_policy
from distillguard.console.scan_data import AGES, STATUSES, Filters
from distillguard.console.state import Console
from distillguard.errors import InputError, StoreError
from distillguard.gateway.policy import Policy
from distillguard.records import PolicyRecord
from distillguard.report.charts import timeline_svg
from distillguard.share.stix_export import build_bundle


def _page_number(text: str | None) -> int:
    if not text:
        return 0
    if not text.isdigit() or len(text) > 6:
        raise InputError(f"page: a page number, got {text[:20]!r}")
    return max(int(text) - 1, 0)


def queue_page(console: Console, query: dict[str, str]) -> dict[str, Any]:
    """The queue: campaigns, then one page of flagged accounts outside campaigns; filtered."""
    scan = console.scan()
    f = Filters(capability=query.get("capability", ""), age=query.get("age", ""), status=query.get("status", ""))
    page = _page_number(query.get("page"))
    current = console.log.current()
    size = console.settings.page_size
    accounts, total = scan.queue_accounts(f, current, page=page, page_size=size)
    pages = max(ceil(total / size), 1)
    if page >= pages:
        raise InputError(f"page: {page + 1} is past the last page ({pages})")
    kept = {k: v for k, v in (("capability", f.capability), ("age", f.age), ("status", f.status)) if v}
    return {"scan": scan, "summary": scan.summary, "counts": scan.counts(), "filters": f,
            "campaigns": scan.queue_campaigns(f, current), "accounts": accounts, "total": total, "page": page + 1,
            "pages": pages, "kept": kept, "capabilities": scan.capabilities, "ages": list(AGES),
            "statuses": STATUSES}


def _policy_for(records: list[PolicyRecord], accounts: set[str], cluster: str | None = None) -> list[PolicyRecord]:
    """The records that name any of ``accounts`` (as a subject or a member) or the cluster."""
    out = []
    for r in records:
        kind, _, ident = r.subject.partition(":")
        if (kind == "account" and ident in accounts) or (kind == "cluster" and (
                ident == cluster or accounts.intersection(r.members or []))):
            out.append(r)
    return out


def campaign_page(console: Console, campaign_id: str) -> dict[str, Any]:
    """A campaign: members, graph, timelines by capability, pivot, infrastructure, evidence, samples, decisions."""
    scan = console.scan()
    c = scan.campaign(campaign_id)  # KeyError: 404
    members = scan.members(campaign_id)
    pictures = scan.pictures.get(campaign_id)
    current = console.log.current()
    policy = effective_policy(scan.base_policy, current, scan=scan.key)
    standing = current.get(("campaign", campaign_id))
    return {
        "c": c, "members": members, "more_members": len(c.account_ids) - len(members),
        "graph": pictures.graph, "timeline": pictures.timeline, "timelines": pictures.timelines,
        "edges": pictures.edges, "n_edges": pictures.n_edges,
        "samples": scan.samples(campaign_id), "retention": console.settings.retention,
        "history": console.log.of("campaign", campaign_id), "standing": standing if _this_scan(standing, scan.key)
        else None, "policy": _policy_for(policy, set(c.account_ids), c.cluster_id), "scan": scan,
    }


def _this_scan(d: Decision | None, key: str) -> bool:
    return d is not None and d.scan == key


def account_page(console: Console, account_id: str) -> dict[str, Any]:
    """An account: features against the reference, nearest reference accounts, traffic, samples, policy now."""
    scan = console.scan()
    row = scan.account(account_id)
    if row is None:
        raise KeyError(account_id)
    details: dict[str, Any] | None = None
    problem = None
    try:
        details = console.accounts.details(account_id, key=scan.key, flagged=scan.flagged_ids(),
                                           cluster_id=row["cluster_id"])
    except (InputError, StoreError) as exc:  # the store is busy, or its signals unreadable: show what the scan has
        problem = str(exc)
    now = Policy(console.settings.policy_path).decide(account_id)  # the gateway's own lookup on the file it loads
    current = console.log.current()
    return {
        "a": row, "details": details, "problem": problem, "campaign_id": scan.campaign_of.get(account_id),
        "timeline": Markup(timeline_svg(details["hours"])) if details and details["hours"] else Markup(""),
        "retention": console.settings.retention, "gateway": now, "history": console.log.of("account", account_id),
        "standing": current.get(("account", account_id)), "scan": scan,
    }


def audit_page(console: Console) -> dict[str, Any]:
    """Every decision, newest first."""
    return {"decisions": list(reversed(console.log.all()))}


def stix_bundle(console: Console, campaign_id: str) -> bytes:
    """The campaign as a STIX 2.1 bundle (``distillguard export-stix`` for one campaign)."""
    c = console.scan().campaign(campaign_id)
    text: str = build_bundle([c]).serialize(pretty=True)
    return text.encode()
