"""Link accounts run together into clusters: evidence → weighted graph → Leiden communities.

>>> from distillguard.link import KINDS
>>> KINDS["payment"].family
'payment'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.config import LinkSettings
from distillguard.link.communities import communities
from distillguard.link.evidence import (
    HOSTING_ASNS,
    KINDS,
    LinkInputs,
    evidence_values,
    ordinary_holders,
    partner_values,
)
from distillguard.link.graph import synchrony_pairs, value_pairs, weighted_edges
from distillguard.schema import ACCOUNT_CLUSTERS, ACCOUNT_LINKS, REFERENCE_VALUES

__all__ = ["KINDS", "LinkInputs", "Links", "communities", "evidence_values", "link_accounts", "link_edges",
           "reference_values"]


@dataclass(frozen=True)
class Links:
    """The link stage's output: clusters (``ACCOUNT_CLUSTERS``) and the edges behind them (``ACCOUNT_LINKS``)."""

    clusters: pa.Table
    edges: pa.Table


def link_edges(inputs: LinkInputs, settings: LinkSettings) -> ir.Table:
    """The weighted edges as one Ibis expression (any engine)."""
    hosting = HOSTING_ASNS + tuple(settings.hosting_asns)
    values = evidence_values(inputs, settings.min_template_share, hosting)
    base_rate = ordinary_holders(values, inputs, settings.established_days) if settings.base_rate_rarity else None
    pairs = value_pairs(values, settings.max_group_accounts, base_rate)
    sync = synchrony_pairs(inputs.signals, max_group=settings.max_group_accounts, min_bins=settings.min_sync_bins,
                           full_bins=settings.full_sync_bins, min_jaccard=settings.min_sync_jaccard)
    return weighted_edges(pairs.union(sync), settings.min_edge_weight)


def link_accounts(
    execute: Callable[[ir.Table], pa.Table], inputs: LinkInputs, *, settings: LinkSettings,
    edges: pa.Table | None = None,
) -> Links:
    """Edges computed by ``execute`` (DuckDB or Spark), clusters by Leiden here.

    Accounts that used a partner's indicators carry them in ``partner_indicators``
    (with a null ``cluster_id`` when nothing else links them). ``edges``: the result of
    ``link_edges`` ordered by src and dst, computed already (replay runs its SQL once compiled).
    """
    if edges is None:
        edges = execute(link_edges(inputs, settings).order_by(["src", "dst"]))
    kinds = [sorted(k or []) for k in edges.column("kinds").to_pylist()]
    edges = pa.table({"src": edges.column("src"), "dst": edges.column("dst"),
                      "weight": pc.round(edges.column("weight").cast(pa.float64()), 9),
                      "kinds": pa.array(kinds, pa.list_(pa.string()))}, schema=ACCOUNT_LINKS)
    clusters = communities(edges)
    if inputs.partner is not None:
        clusters = _with_partner_hits(clusters, execute(partner_hits(inputs)))
    return Links(clusters, edges)


def partner_hits(inputs: LinkInputs) -> ir.Table:
    """``(account_id, indicators)``: the partner indicators (``kind:value``) each account used."""
    assert inputs.partner is not None
    # Only the partner part of the evidence: the rest (network, content, ...) is not needed here.
    hits = partner_values(inputs.exchanges, inputs.accounts, inputs.partner)
    hits = hits.filter(hits.value.notnull())
    return hits.group_by("account_id").aggregate(indicators=hits.value.collect())


def _with_partner_hits(clusters: pa.Table, hits: pa.Table) -> pa.Table:
    by_account = {r["account_id"]: sorted(r["indicators"]) for r in hits.to_pylist()}
    rows = clusters.to_pylist()
    for r in rows:
        r["partner_indicators"] = by_account.pop(r["account_id"], [])
    rows += [{"account_id": a, "cluster_id": None, "link_evidence": [], "partner_indicators": v}
             for a, v in sorted(by_account.items())]
    return pa.Table.from_pylist(rows, schema=ACCOUNT_CLUSTERS)


def reference_values(holders: pa.Table, keep: set[str]) -> pa.Table:
    """``(kind, value, accounts)`` (``schema.REFERENCE_VALUES``): how many of a reference's accounts in
    ``keep`` held each evidence value (``holders``: ``evidence_values`` rows); the next scan's base rate."""
    kept = holders.filter(pc.is_in(holders.column("account_id"), pa.array(sorted(keep), pa.string())))
    counts = kept.group_by(["kind", "value"]).aggregate([("account_id", "count")])
    return pa.table({"kind": counts.column("kind"), "value": counts.column("value"),
                     "accounts": counts.column("account_id_count").cast(pa.int64())}, schema=REFERENCE_VALUES)
