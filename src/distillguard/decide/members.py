"""Account rows around campaigns: the view the gates read, and campaign members flagged.

>>> scores = pa.table({"account_id": ["a", "b"], "score": [0.1, 0.2], "flagged": [False, False],
...                    "reasons": [[], ["odd"]]})
>>> member = Campaign.model_validate({"campaign_id": "campaign-0001", "account_ids": ["b"], "exchange_count": 1,
...     "score": 0.5, "capabilities": {}, "first_seen": "2026-02-02T00:00:00+00:00",
...     "last_seen": "2026-02-02T00:00:00+00:00", "evidence": []})
>>> flag_campaign_members(scores, [member]).column("reasons").to_pylist()
[[], ['member of campaign-0001 (1 linked accounts)', 'odd']]
"""

from __future__ import annotations

import pyarrow as pa

from distillguard.records import Campaign


def member_reason(campaign: Campaign) -> str:
    """The first reason of a campaign member (and why a reference sets it aside)."""
    return f"member of {campaign.campaign_id} ({len(campaign.account_ids)} linked accounts)"


def flag_campaign_members(scores: pa.Table, campaigns: list[Campaign]) -> pa.Table:
    """Members of a campaign are flagged, with the campaign as their first reason."""
    member_of = {a: c for c in campaigns for a in c.account_ids}
    flagged, reasons = [], []
    for account, flag, why in zip(scores.column("account_id").to_pylist(), scores.column("flagged").to_pylist(),
                                  scores.column("reasons").to_pylist(), strict=True):
        c = member_of.get(account)
        flagged.append(bool(flag) or c is not None)
        reasons.append(([member_reason(c)] if c else []) + (why or []))
    return scores.set_column(scores.schema.get_field_index("flagged"), "flagged", pa.array(flagged, pa.bool_())) \
        .set_column(scores.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.list_(pa.string())))


def account_view(scores: pa.Table, clusters: pa.Table, features: pa.Table) -> pa.Table:
    """Scores with cluster, link evidence and volume columns, one row per account, sorted by id."""
    cluster_of = {r["account_id"]: r for r in clusters.to_pylist()}
    volume = {r["account_id"]: r for r in features.select(["account_id", "n_exchanges", "first_seen",
                                                             "last_seen"]).to_pylist()}
    rows = []
    for r in sorted(scores.to_pylist(), key=lambda r: r["account_id"]):
        c, v = cluster_of.get(r["account_id"], {}), volume.get(r["account_id"], {})
        if c.get("partner_indicators"):
            shown = ", ".join(c["partner_indicators"][:3])
            r = {**r, "reasons": [f"used {len(c['partner_indicators'])} indicators shared by partners ({shown})",
                                  *(r["reasons"] or [])]}
        rows.append({**r, "cluster_id": c.get("cluster_id"), "link_evidence": c.get("link_evidence"),
                     "partner_indicators": c.get("partner_indicators") or [],
                     "n_exchanges": v.get("n_exchanges"), "first_seen": v.get("first_seen"),
                     "last_seen": v.get("last_seen")})
    schema = scores.schema.append(pa.field("cluster_id", pa.string())).append(
        pa.field("link_evidence", pa.list_(pa.string()))).append(
        pa.field("partner_indicators", pa.list_(pa.string()))).append(pa.field("n_exchanges", pa.int64())).append(
        pa.field("first_seen", features.schema.field("first_seen").type)).append(
        pa.field("last_seen", features.schema.field("last_seen").type))
    return pa.Table.from_pylist(rows, schema=schema)
