"""Linking rules, campaign building and the policy table on hand-made tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from distillguard.link import cluster_accounts
from distillguard.link.campaigns import build_campaigns
from distillguard.policy import decide


def _pairs(rows: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table({"src": [r[0] for r in rows], "dst": [r[1] for r in rows],
                     "kind": [r[2] for r in rows], "n": [1] * len(rows)})


def test_one_weak_kind_does_not_link_two_kinds_or_payment_do() -> None:
    clusters = cluster_accounts(_pairs([
        ("a", "b", "ip"),  # a shared address alone: no edge
        ("c", "d", "ip"), ("c", "d", "template"),  # two kinds: edge
        ("e", "f", "payment"),  # a shared card: edge
        ("d", "g", "payment"),
    ])).table.to_pylist()
    by = {r["account_id"]: r["cluster_id"] for r in clusters}
    assert "a" not in by and "b" not in by
    assert by["c"] == by["d"] == by["g"] == "cluster-0001"  # the largest cluster is numbered first
    assert by["e"] == by["f"] == "cluster-0002"
    assert {r["account_id"]: r["link_evidence"] for r in clusters}["c"] == ["ip", "template"]


def _scored(rows: list[tuple[str, float, bool, str | None]]) -> pa.Table:
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    return pa.Table.from_pylist([{
        "account_id": a, "score": s, "flagged": f, "cluster_id": c, "link_evidence": ["payment"] if c else [],
        "n_exchanges": 100, "first_seen": t0, "last_seen": t0, "reasons": ["volume 100 exchanges (robust z 5.0)"],
    } for a, s, f, c in rows])


def test_campaigns_need_enough_suspicious_members() -> None:
    scored = _scored([("a", 5.0, True, "cluster-0001"), ("b", 4.0, True, "cluster-0001"),
                      ("c", 0.1, False, "cluster-0002"), ("d", 3.0, True, "cluster-0002"),
                      ("e", 0.2, False, "cluster-0002"), ("z", 9.0, True, None)])
    caps = pa.table({"account_id": ["a", "a", "b"], "capability": ["coding", "tool-use", "coding"], "n": [50, 50, 100]})
    campaigns = build_campaigns(scored, caps, min_accounts=2, min_suspicious_share=0.5, suspicious_above=2.0)
    assert [c["cluster_id"] for c in campaigns] == ["cluster-0001"]
    c = campaigns[0]
    assert c["account_ids"] == ["a", "b"] and c["exchange_count"] == 200
    assert c["capabilities"] == {"coding": 0.75, "tool-use": 0.25}
    assert any("2 accounts are linked by shared payment fingerprints" in e for e in c["evidence"])

    as_of = datetime(2026, 2, 8, tzinfo=UTC)
    policy = decide(scored.select(["account_id", "score", "flagged", "reasons"]), campaigns, as_of, 7).to_pylist()
    actions = {(p["subject_type"], p["subject_id"]): p["action"] for p in policy}
    assert actions == {("cluster", "cluster-0001"): "challenge", ("account", "d"): "throttle",
                       ("account", "z"): "throttle"}
    assert all(p["expires_at"] == datetime(2026, 2, 15, tzinfo=UTC) for p in policy)
