"""Account linking by rare shared values: payment, client IP, dominant template.

Blocking keeps the work near-linear: a value seen on more than
``max_group_accounts`` accounts (a popular NAT, a common opener) links nothing,
so only small groups produce account pairs. A pair is an edge when it shares
two kinds of evidence, or a payment fingerprint alone; clusters are the
connected components. The relational part is Ibis (any engine); components
are computed with SciPy's sparse graph routines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

STRONG_KINDS = frozenset({"payment"})


def shared_values(signals: ir.Table, accounts: ir.Table, min_template_share: float) -> ir.Table:
    """``(account_id, kind, value)`` rows: what each account could share with others."""
    ips = signals.filter(signals.client_ip.notnull()).select(
        "account_id", kind=ibis.literal("ip"), value=signals.client_ip
    ).distinct()
    per_tpl = signals.group_by(["account_id", "template_sig"]).aggregate(c=signals.count())
    totals = signals.group_by("account_id").aggregate(n=signals.count())
    per_tpl = per_tpl.join(totals, "account_id")
    dominant = per_tpl.filter(
        per_tpl.c.cast("float64") >= min_template_share * per_tpl.n.cast("float64")
    ).select("account_id", kind=ibis.literal("template"), value=per_tpl.template_sig)
    pay = accounts.filter(accounts.payment_fingerprint.notnull()).select(
        "account_id", kind=ibis.literal("payment"), value=accounts.payment_fingerprint
    )
    return ips.union(dominant).union(pay)


def shared_pairs(values: ir.Table, max_group_accounts: int) -> ir.Table:
    """Account pairs with the number of evidence kinds they share and which."""
    sizes = values.group_by(["kind", "value"]).aggregate(k=values.account_id.nunique())
    small = sizes.filter((sizes.k >= 2) & (sizes.k <= max_group_accounts))
    v = values.semi_join(small, ["kind", "value"])
    a, b = v.view(), v.view()
    pairs = a.join(b, [a.kind == b.kind, a.value == b.value, a.account_id < b.account_id])
    pairs = pairs.select(src=a.account_id, dst=b.account_id, kind=a.kind)
    return pairs.group_by(["src", "dst", "kind"]).aggregate(n=pairs.count())


def link_accounts(
    execute: Callable[[ir.Table], pa.Table], signals: ir.Table, accounts: ir.Table, min_template_share: float,
    max_group_accounts: int,
) -> pa.Table:
    """The link stage: shared values → pairs (run by ``execute`` on any engine) → clusters."""
    pairs = execute(shared_pairs(shared_values(signals, accounts, min_template_share), max_group_accounts))
    return cluster_accounts(pairs).table


@dataclass(frozen=True)
class Clusters:
    """Cluster of each linked account and the evidence kinds behind it."""

    table: pa.Table  # account_id, cluster_id, link_evidence (schema.ACCOUNT_CLUSTERS)


def cluster_accounts(pairs: pa.Table) -> Clusters:
    """Connected components over qualifying pairs (see module docstring).

    >>> p = pa.table({"src": ["a", "a", "c"], "dst": ["b", "b", "d"],
    ...               "kind": ["ip", "template", "ip"], "n": [1, 1, 1]})
    >>> cluster_accounts(p).table.to_pylist()[0]["cluster_id"]
    'cluster-0001'
    """
    edges: dict[tuple[str, str], set[str]] = {}
    for src, dst, kind in zip(pairs.column("src").to_pylist(), pairs.column("dst").to_pylist(),
                              pairs.column("kind").to_pylist(), strict=True):
        edges.setdefault((src, dst), set()).add(kind)
    kept = {e: k for e, k in edges.items() if len(k) >= 2 or k & STRONG_KINDS}
    names = sorted({a for e in kept for a in e})
    index = {a: i for i, a in enumerate(names)}
    if not names:
        return Clusters(pa.table({"account_id": pa.array([], pa.string()),
                                  "cluster_id": pa.array([], pa.string()),
                                  "link_evidence": pa.array([], pa.list_(pa.string()))}))
    rows = np.array([index[s] for s, _ in kept])
    cols = np.array([index[d] for _, d in kept])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=False)
    evidence: dict[str, set[str]] = {}
    for (s, d), kinds in kept.items():
        evidence.setdefault(s, set()).update(kinds)
        evidence.setdefault(d, set()).update(kinds)
    # Number clusters by size (largest first), then by first member: stable ids.
    members: dict[int, list[str]] = {}
    for name, label in zip(names, labels, strict=True):
        members.setdefault(int(label), []).append(name)
    order = sorted(members.values(), key=lambda m: (-len(m), m[0]))
    out = {"account_id": [], "cluster_id": [], "link_evidence": []}  # type: dict[str, list[object]]
    for i, group in enumerate(order, start=1):
        for name in group:
            out["account_id"].append(name)
            out["cluster_id"].append(f"cluster-{i:04d}")
            out["link_evidence"].append(sorted(evidence[name]))
    return Clusters(pa.table(out, schema=pa.schema([
        ("account_id", pa.string()), ("cluster_id", pa.string()),
        ("link_evidence", pa.list_(pa.string()))])))
