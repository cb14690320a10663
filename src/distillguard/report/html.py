"""Render ``report.html`` from the files of a scan output directory.

The page is self-contained (inline CSS and SVG, no scripts from the network)
so it opens offline and can be attached to a ticket. It reads like an analyst
works: what to do, how accounts are flagged, each campaign with its decision, the
flagged accounts with why, and the clusters that were looked at and cleared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pyarrow.parquet as pq
from markupsafe import Markup, escape

from distillguard.errors import InputError
from distillguard.records import Campaign, PolicyRecord, ScanSummary, read_json, read_json_list
from distillguard.report.accounts import account_rows, cleared_clusters, near_misses
from distillguard.report.charts import graph_svg, timeline_svg
from distillguard.report.guidance import Tier, action_words, flag_rule, next_step, scan_settings, tier

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("distillguard.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
MEMBERS_SHOWN = 60  # member rows per campaign; the rest are in accounts.parquet


def _when(moment: datetime | None) -> str:
    """``2026-02-02T00:00:40.576+00:00`` → ``2026-02-02 00:00 UTC``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plural(n: int, noun: str) -> str:
    """``1 account``, ``2 accounts`` (with thousands separators)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _code(text: str) -> Markup:
    """Escape ``text`` and show its `backticked` parts as code.

    >>> str(_code("run `a <b>` now"))
    'run <code>a &lt;b&gt;</code> now'
    """
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def _nobreak(text: str) -> Markup:
    """Escape ``text`` and keep each campaign and cluster id on one line (a browser breaks at the hyphen).

    >>> str(_nobreak("member of campaign-0003 & more"))
    'member of <span class="nowrap">campaign-0003</span> &amp; more'
    """
    return Markup(_IDS.sub(lambda m: f'<span class="nowrap">{m.group(0)}</span>', str(escape(text))))


_IDS = re.compile(r"\b(?:campaign|cluster)-[0-9A-Za-z]+\b")
_ENV.filters["when"] = _when
_ENV.filters["nobreak"] = _nobreak
_ENV.filters["plural"] = _plural
_ENV.filters["code"] = _code


@dataclass(frozen=True)
class Shown:
    """One campaign as the page shows it: the record, its decision and its pictures."""

    c: Campaign
    tier: Tier
    decision: PolicyRecord | None
    action_words: str
    next_step: str
    timeline: Markup
    graph: Markup
    members: list[dict[str, Any]]


def render_report(out_dir: Path, top_accounts: int = 50) -> Path:
    """(Re)write ``out_dir/report.html`` from the stored results; return its path."""
    out_dir = Path(out_dir)
    needed = ["accounts.parquet", "campaigns.json", "summary.json"]
    missing = [n for n in needed if not (out_dir / n).is_file()]
    if missing:
        raise InputError(f"{out_dir} is not a scan output directory: missing {', '.join(missing)}")
    campaigns = read_json_list(out_dir / "campaigns.json", Campaign)
    summary = read_json(out_dir / "summary.json", ScanSummary)
    policy = read_json_list(out_dir / "policy.json", PolicyRecord) if (out_dir / "policy.json").is_file() else []
    rows = account_rows(pq.read_table(out_dir / "accounts.parquet"), campaigns, summary)
    flagged = [r for r in rows if r["flagged"]]
    clusters, more_clusters = cleared_clusters(rows, campaigns, summary=summary)
    html = _ENV.get_template("report.html").render(
        summary=summary,
        out_dir=str(out_dir),
        rule=flag_rule(threshold=summary.threshold, units=summary.threshold_units, target_fpr=summary.target_fpr,
                       member_threshold=summary.member_threshold, member_fpr=summary.member_fpr,
                       reference_accounts=summary.reference_accounts_kept, settings=scan_settings(summary)),
        campaigns=[_shown(c, rows, policy, summary, str(out_dir)) for c in campaigns],
        throttled=[p for p in policy if p.subject.startswith("account:")],
        top=flagged[:top_accounts],
        n_accounts=len(rows),
        n_flagged=len(flagged),
        n_alone=sum(bool(r["flagged_alone"]) for r in rows),
        cleared=clusters,
        more_cleared=more_clusters,
        near=near_misses(rows),
    )
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def _shown(c: Campaign, rows: list[dict[str, Any]], policy: list[PolicyRecord], summary: ScanSummary,
           out_dir: str) -> Shown:
    ids = set(c.account_ids)
    members = [r for r in rows if r["account_id"] in ids]  # highest score first, as ``rows``
    own = {r["account_id"] for r in members if r["flagged_alone"]}
    bar = summary.member_threshold
    unusual = {r["account_id"] for r in members if (r["score"] or 0.0) > bar} if bar is not None else None
    decision = next((p for p in policy if c.cluster_id and p.subject == f"cluster:{c.cluster_id}"), None)
    t = tier(c.score)
    release = (c.release_pivot.model, c.release_pivot.released_at) if c.release_pivot else None
    return Shown(
        c=c, tier=t, decision=decision,
        action_words=action_words(decision.action, cluster=True) if decision else "",
        next_step=next_step(t.name, out_dir),
        timeline=Markup(timeline_svg(c.timeline, release=release)),
        graph=Markup(graph_svg(c.account_ids, c.graph.edges if c.graph else [], flagged=own, unusual=unusual)),
        members=members[:MEMBERS_SHOWN],
    )
