"""Render ``report.html`` from the files of a scan output directory.

The page is self-contained (inline CSS and SVG, no scripts from the network)
so it opens offline and can be attached to a ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pyarrow.parquet as pq
from markupsafe import Markup

from distillguard.errors import InputError
from distillguard.records import Campaign, ScanSummary, read_json, read_json_list
from distillguard.report.charts import graph_svg, timeline_svg

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("distillguard.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def _when(moment: datetime | None) -> str:
    """``2026-02-02T00:00:40.576+00:00`` → ``2026-02-02 00:00 UTC``."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_ENV.filters["when"] = _when


def render_report(out_dir: Path, top_accounts: int = 50) -> Path:
    """(Re)write ``out_dir/report.html`` from the stored results; return its path."""
    out_dir = Path(out_dir)
    needed = ["accounts.parquet", "campaigns.json", "summary.json"]
    missing = [n for n in needed if not (out_dir / n).is_file()]
    if missing:
        raise InputError(f"{out_dir} is not a scan output directory: missing {', '.join(missing)}")
    accounts = pq.read_table(out_dir / "accounts.parquet")
    campaigns = read_json_list(out_dir / "campaigns.json", Campaign)
    summary = read_json(out_dir / "summary.json", ScanSummary)
    rows = sorted(accounts.to_pylist(), key=lambda r: -(r["score"] or 0.0))
    flagged = [r for r in rows if r["flagged"]]
    alone = {r["account_id"] for r in rows if r["flagged"] and not any(
        x.startswith("member of campaign-") for x in r["reasons"] or [])}
    shown = [(c, Markup(timeline_svg(c.timeline)),
              Markup(graph_svg(c.account_ids, c.graph.edges if c.graph else [], flagged=alone & set(c.account_ids))))
             for c in campaigns]  # each campaign with its pictures
    html = _ENV.get_template("report.html").render(
        summary=summary,
        campaigns=shown,
        top=flagged[:top_accounts],
        n_accounts=len(rows),
        n_flagged=len(flagged),
    )
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
