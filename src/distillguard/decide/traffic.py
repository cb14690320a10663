"""Each clustered account's traffic in aggregate: what campaign records need from the per-exchange signals.

A campaign's capabilities, hourly timeline and release pivot are sums over its
members' exchanges, so they are computed per account on the engine (DuckDB or
Spark, one Ibis expression each) and the driver receives one row per account and
capability, hour or release, never an exchange (``details`` sums them per campaign).

>>> import ibis
>>> signals = ibis.memtable(pa.table({"account_id": ["a", "a", "b"], "capability": ["code", "code", "math"],
...     "model": ["m2", "m1", "m2"], "timestamp": pa.array([0, 3_600_000_000, 0], pa.timestamp("us", "UTC"))}))
>>> events = ibis.memtable(pa.table({"type": ["model_release"], "model": ["m2"],
...     "timestamp": pa.array([0], pa.timestamp("us", "UTC"))}))
>>> members = ibis.memtable(pa.table({"account_id": ["a"]}))
>>> exprs = member_traffic_exprs(signals, events, members=members)
>>> exprs["capabilities"].to_pyarrow().to_pylist()
[{'account_id': 'a', 'capability': 'code', 'n': 2}]
>>> exprs["releases"].to_pyarrow().select(["n", "same"]).to_pylist()
[{'n': 2, 'same': 1}]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import ibis
import ibis.expr.types as ir
import pyarrow as pa

__all__ = ["MemberTraffic", "TrafficOf", "member_traffic", "member_traffic_exprs"]


@dataclass(frozen=True)
class MemberTraffic:
    """Per member account: ``capabilities`` (account_id, capability, n), ``hours`` (account_id, hour, n)
    and ``releases`` (account_id, ev_model, released_at, n, same: exchanges to the released model in
    the 24 h after a model release)."""

    capabilities: pa.Table
    hours: pa.Table
    releases: pa.Table


TrafficOf = Callable[[pa.Table], MemberTraffic]
"""The aggregates of the signals of some accounts (a table of ``account_id``), from the scan's engine."""


def member_traffic_exprs(
    signals: ir.Table, events: ir.Table, *, members: ir.Table, since: datetime | None = None
) -> dict[str, ir.Table]:
    """The three aggregates of ``MemberTraffic`` over the ``signals`` of ``members`` (from ``since`` on)."""
    if since is not None:
        signals = signals.filter(signals.timestamp >= ibis.literal(since.astimezone(UTC), type="timestamp('UTC')"))
    s = signals.semi_join(members, "account_id")
    capabilities = s.group_by(["account_id", "capability"]).aggregate(n=s.count())
    hourly = s.mutate(hour=s.timestamp.truncate("h"))
    hours = hourly.group_by(["account_id", "hour"]).aggregate(n=hourly.count())
    rel = events.filter(events.type == "model_release")
    rel = rel.select(ev_model=rel.model, released_at=rel.timestamp)
    joined = s.join(rel, [s.timestamp >= rel.released_at,
                          s.timestamp < rel.released_at + ibis.interval(hours=24)])
    releases = joined.group_by(["account_id", "ev_model", "released_at"]).aggregate(
        n=joined.count(), same=(joined.model == joined.ev_model).ifelse(1, 0).sum())
    return {"capabilities": capabilities, "hours": hours, "releases": releases}


def member_traffic(
    execute: Callable[[ir.Table], pa.Table], exprs: dict[str, ir.Table]
) -> MemberTraffic:
    """``member_traffic_exprs``'s aggregates run by ``execute`` (an engine's)."""
    return MemberTraffic(execute(exprs["capabilities"]), execute(exprs["hours"]), execute(exprs["releases"]))
