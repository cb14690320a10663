"""Clusters from the weighted account graph: Leiden community detection.

Connected components let one stray edge (two campaigns renting the same proxy
provider, a customer who shared an exit address with a harvester) merge
groups; Leiden (Traag et al. 2019, via ``leidenalg``) optimises weighted
modularity and keeps well-connected communities apart. The resolution is low
(0.1): plain modularity (1.0) also cuts a homogeneous hydra network, whose
rotating proxies make a random graph, into arbitrary pieces, while at 0.1 two
groups stay apart only when the edges between them are a small fraction of what
chance would give (a bridge of one edge between two groups of a few dozen links
each). Measured trade-off (ARI over attack accounts): 0.3 kept small campaigns
that share a few of a larger one's instructions apart on the simulator
(random-campaigns seed 4: 0.65 at 0.1, 0.86 at 0.3; seed 5: 0.96 and 0.99) but
cut an independently generated campaign on sticky residential exits into six
(``benchmarks/independent_traffic.py`` seed 3: 0.64 at 0.1, 0.42 at 0.2, 0.16 at 0.3).
Merging is the lesser harm: both parts stay flagged. Seeded, so the same graph
always gives the same clusters.
"""

from __future__ import annotations

from collections import defaultdict

import igraph as ig
import leidenalg
import pyarrow as pa

from distillguard.schema import ACCOUNT_CLUSTERS


def communities(edges: pa.Table, resolution: float = 0.1, seed: int = 0) -> pa.Table:
    """``account_id, cluster_id, link_evidence`` (``schema.ACCOUNT_CLUSTERS``) from weighted edges.

    ``edges`` has ``src``, ``dst``, ``weight`` and ``kinds``. Communities of one
    account are dropped; clusters are numbered by size (largest first), then by
    their first member, so ids are stable.

    >>> e = pa.table({"src": ["a", "a", "b", "x"], "dst": ["b", "c", "c", "y"], "weight": [2.0, 2.0, 2.0, 1.5],
    ...               "kinds": [["payment"], ["payment"], ["ip", "template"], ["sync"]]})
    >>> [(r["account_id"], r["cluster_id"]) for r in communities(e).to_pylist()]
    [('a', 'cluster-0001'), ('b', 'cluster-0001'), ('c', 'cluster-0001'), ('x', 'cluster-0002'), ('y', 'cluster-0002')]
    """
    src, dst = edges.column("src").to_pylist(), edges.column("dst").to_pylist()
    names = sorted(set(src) | set(dst))
    if not names:
        return ACCOUNT_CLUSTERS.empty_table()
    index = {a: i for i, a in enumerate(names)}
    graph = ig.Graph(n=len(names), edges=[(index[s], index[d]) for s, d in zip(src, dst, strict=True)])
    graph.es["weight"] = edges.column("weight").to_pylist()
    partition = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                         resolution_parameter=resolution, seed=seed, n_iterations=-1)
    members: dict[int, list[str]] = defaultdict(list)
    for name, label in zip(names, partition.membership, strict=True):
        members[label].append(name)
    evidence: dict[str, set[str]] = defaultdict(set)
    label_of = dict(zip(names, partition.membership, strict=True))
    for s, d, kinds in zip(src, dst, edges.column("kinds").to_pylist(), strict=True):
        if label_of[s] == label_of[d]:  # evidence that holds the account in its cluster
            evidence[s].update(kinds or [])
            evidence[d].update(kinds or [])
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    rows = [{"account_id": a, "cluster_id": f"cluster-{i:04d}", "link_evidence": sorted(evidence[a]),
             "partner_indicators": []} for i, group in enumerate(groups, start=1) for a in group]
    return pa.Table.from_pylist(rows, schema=ACCOUNT_CLUSTERS)


def components(edges: pa.Table) -> dict[str, str]:
    """Account → connected component of the link graph (``component-NNNN``; unlinked accounts absent).

    Coarser than the Leiden clusters: a campaign that Leiden cuts into several clusters is one
    component, so its parts cannot vouch for each other as neighbours (``scoring``).

    >>> e = pa.table({"src": ["a", "b", "x"], "dst": ["b", "c", "y"]})
    >>> components(e)
    {'a': 'component-0001', 'b': 'component-0001', 'c': 'component-0001', 'x': 'component-0002', 'y': 'component-0002'}
    """
    src, dst = edges.column("src").to_pylist(), edges.column("dst").to_pylist()
    names = sorted(set(src) | set(dst))
    if not names:
        return {}
    index = {a: i for i, a in enumerate(names)}
    graph = ig.Graph(n=len(names), edges=[(index[s], index[d]) for s, d in zip(src, dst, strict=True)])
    parts = sorted(([names[i] for i in part] for part in graph.connected_components()), key=lambda m: (-len(m), m[0]))
    return {a: f"component-{i:04d}" for i, part in enumerate(parts, start=1) for a in part}
