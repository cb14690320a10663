"""What the store knows about each campaign's traffic: capabilities, infrastructure, timeline, links.

Queried only for the members of clusters that became campaigns, so the cost
follows the campaigns, not the whole log. DuckDB SQL over the store's exchanges,
links and accounts, and over the members' signals summed per account on the scan's
engine (``traffic``), so on Spark no signal reaches the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from distillguard.decide.gates import Candidate
from distillguard.decide.traffic import TrafficOf
from distillguard.records import ReleasePivot, SharedValue
from distillguard.store import Store

TOP_VALUES = 10  # shared values kept per kind and campaign


@dataclass
class CampaignDetails:
    """What the store knows about one cluster's traffic."""

    capabilities: dict[str, int] = field(default_factory=dict)  # exchanges per capability area
    infrastructure: list[SharedValue] = field(default_factory=list)  # values shared by 2+ members
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (hour, exchanges)
    edges: list[tuple[str, str, float, list[str]]] = field(default_factory=list)
    release: ReleasePivot | None = None


def campaign_details(
    store: Store, candidates: list[Candidate], *, traffic: TrafficOf, since: datetime | None = None
) -> dict[str, CampaignDetails]:
    """``CampaignDetails`` per cluster id of ``candidates``, from the traffic since ``since`` (the scan's window;
    None: all of it); ``traffic`` sums the members' signals (from ``since`` on, as it was made)."""
    members = pa.table({
        "account_id": [r["account_id"] for c in candidates for r in c.rows],
        "cluster_id": [c.cluster_id for c in candidates for _ in c.rows],
    })
    out: dict[str, CampaignDetails] = {c.cluster_id: CampaignDetails() for c in candidates}
    if not candidates:
        return out
    sums = traffic(members.select(["account_id"]))
    with store.registered(members) as m, store.registered(sums.capabilities) as caps, \
            store.registered(sums.hours) as hours, store.registered(sums.releases) as releases:
        for r in store.query(f"""SELECT m.cluster_id, c.capability, sum(c.n)::BIGINT AS n
                                 FROM {caps} c JOIN {m} m USING (account_id) GROUP BY ALL""").to_pylist():
            out[r["cluster_id"]].capabilities[r["capability"] or "chat"] = r["n"]
        timeline = store.query(f"""SELECT m.cluster_id, sum(t.n)::BIGINT AS n,
                                          strftime(date_trunc('hour', t.hour), '%Y-%m-%dT%H:00Z') AS h
                                   FROM {hours} t JOIN {m} m USING (account_id)
                                   GROUP BY ALL ORDER BY cluster_id, h""")
        for r in timeline.to_pylist():
            out[r["cluster_id"]].timeline.append((r["h"], r["n"]))
        for r in _infrastructure(store, m, _since("e", since)).to_pylist():
            out[r.pop("cluster_id")].infrastructure.append(SharedValue.model_validate(r))
        edges = store.query(f"""SELECT a.cluster_id, l.src, l.dst, l.weight, l.kinds
                                FROM account_links l JOIN {m} a ON l.src = a.account_id
                                JOIN {m} b ON l.dst = b.account_id AND a.cluster_id = b.cluster_id
                                ORDER BY ALL""")
        for r in edges.to_pylist():
            out[r["cluster_id"]].edges.append((r["src"], r["dst"], r["weight"], r["kinds"]))
        for cluster_id, release in _release(store, m, releases).items():
            out[cluster_id].release = release
    return out


def _since(alias: str, since: datetime | None) -> str:
    """`` WHERE <alias>.timestamp >= since`` (nothing without ``since``)."""
    return "" if since is None else f" WHERE {alias}.timestamp >= TIMESTAMPTZ '{since.astimezone(UTC).isoformat()}'"


def _infrastructure(store: Store, m: str, within: str = "") -> pa.Table:
    """Network values and payment fingerprints shared by two or more members of a campaign."""
    return store.query(f"""
        WITH x AS (
            SELECT m.cluster_id, e.account_id, e.timestamp, e.client_ip AS ip, CAST(e.client_asn AS VARCHAR) AS asn,
                   e.user_agent, e.tls_fingerprint AS tls
            FROM exchanges e JOIN {m} m USING (account_id){within}),
        u AS (UNPIVOT x ON ip, asn, user_agent, tls INTO NAME kind VALUE value),
        net AS (
            SELECT cluster_id, kind, value, count(DISTINCT account_id) AS accounts, count(*) AS exchanges,
                   strftime(min(timestamp), '%Y-%m-%dT%H:%M:%SZ') AS first_seen,
                   strftime(max(timestamp), '%Y-%m-%dT%H:%M:%SZ') AS last_seen
            FROM u GROUP BY ALL HAVING count(DISTINCT account_id) >= 2),
        pay AS (
            SELECT m.cluster_id, 'payment' AS kind, a.payment_fingerprint AS value, count(*) AS accounts,
                   NULL::BIGINT AS exchanges,
                   strftime(min(a.created_at), '%Y-%m-%dT%H:%M:%SZ') AS first_seen,
                   strftime(max(a.created_at), '%Y-%m-%dT%H:%M:%SZ') AS last_seen
            FROM accounts a JOIN {m} m USING (account_id)
            WHERE a.payment_fingerprint IS NOT NULL GROUP BY ALL HAVING count(*) >= 2)
        SELECT * FROM (SELECT * FROM net UNION ALL SELECT * FROM pay)
        QUALIFY row_number() OVER (PARTITION BY cluster_id, kind
                                   ORDER BY accounts DESC, exchanges DESC NULLS LAST, value) <= {TOP_VALUES}
        ORDER BY cluster_id, kind, accounts DESC, exchanges DESC NULLS LAST, value""")


def _release(store: Store, m: str, releases: str) -> dict[str, ReleasePivot]:
    """Per campaign, the release after which the largest share of its traffic went to the new model."""
    rows = store.query(f"""
        SELECT m.cluster_id, r.ev_model AS model, strftime(r.released_at, '%Y-%m-%dT%H:%M:%SZ') AS released_at,
               sum(r.same)::DOUBLE / sum(r.n) AS share_24h, sum(r.n)::BIGINT AS n
        FROM {releases} r JOIN {m} m USING (account_id)
        GROUP BY ALL ORDER BY ALL""").to_pylist()
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        cur = best.get(r["cluster_id"])
        if not cur or r["share_24h"] > cur["share_24h"]:
            best[r["cluster_id"]] = {"model": r["model"], "released_at": r["released_at"],
                                     "share_24h": round(r["share_24h"], 4), "exchanges_24h": r["n"]}
    return {cluster_id: ReleasePivot.model_validate(r) for cluster_id, r in best.items()}
