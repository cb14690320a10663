"""The scan's stages: enrich → features → link → score → decide and publish (ingest: ``ingest``).

Each stage reads the tables the previous one wrote to the store and writes its
own in one transaction, so an interrupted scan leaves a consistent store and a
re-run repeats only what is needed. ``before`` restricts a stage to the exchanges
before a time (replay's windows; ``link_inputs``), ``since`` to those from a time on
(``scan --window``). ``pipeline.Scan`` drives them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

import distillguard
from distillguard.config import Settings
from distillguard.decide import find_campaigns, policy_table
from distillguard.decide.traffic import MemberTraffic, member_traffic, member_traffic_exprs
from distillguard.detect import make_scorer
from distillguard.detect.base import Slices, owner
from distillguard.detect.either import Either
from distillguard.detect.windows import WindowDetector
from distillguard.engine import Engine, SparkEngine
from distillguard.features import account_features
from distillguard.features.account import window_features
from distillguard.ingest import IngestReport
from distillguard.link import LinkInputs, link_accounts
from distillguard.link.communities import components
from distillguard.records import ScanSummary
from distillguard.report import write_outputs
from distillguard.scoring import Reference, Scoring, score_population
from distillguard.signals import INPUT_COLUMNS
from distillguard.signals.parallel import enrich_batches
from distillguard.store import Store

__all__ = ["PARALLEL_ENRICH_ROWS", "Progress", "ScanResult", "link_inputs", "publish", "reference_slices", "rounded",
           "run_enrich", "run_features", "run_link", "run_score", "run_window_features", "timed"]

log = logging.getLogger(__name__)
PARALLEL_ENRICH_ROWS = 200_000
"""Below this many exchanges, starting worker processes costs more than it saves."""
Progress = Callable[[str, int, int | None], None]
"""Called as ``progress(stage, advance, total)``."""


@dataclass(frozen=True)
class ScanResult:
    ingest: IngestReport
    accounts: int
    flagged: int
    campaigns: list[dict[str, Any]]
    report: Path


def run_enrich(
    store: Store, engine: Engine | None = None, *, batch_rows: int = 50_000, progress: Progress | None = None
) -> int:
    """Enrich every exchange into the ``signals`` table; return the row count.

    Locally (DuckDB batches) by default; on Spark through ``mapInArrow`` when
    ``engine`` is a ``SparkEngine``. Either way the same ``signals.enrich`` runs. On Spark the
    signals stay in its warehouse (the store's table is emptied: it would be stale).
    """
    total = store.count("exchanges")
    if isinstance(engine, SparkEngine):
        store.con.execute("DELETE FROM signals")
        engine.enrich()  # one signal per exchange: ``total`` as counted in the store, no second pass
        store.keep_signals_at(engine.signals_path)  # for what reads them afterwards (the console)
        if progress:
            progress("enrich", total, total)
        return total
    workers = (os.cpu_count() or 1) if total >= PARALLEL_ENRICH_ROWS else 1
    store.keep_signals_at(None)
    with store.rebuilt("signals") as staging:
        for table in enrich_batches(store.batches("exchanges", INPUT_COLUMNS, batch_rows), workers):
            store.append("signals", table, into=staging)
            if progress:
                progress("enrich", table.num_rows, total)
    return total


def run_features(
    store: Store, engine: Engine, *, settings: Settings | None = None, before: datetime | None = None,
    since: datetime | None = None,
) -> pa.Table:
    """Account features over the whole period (returned) and per window (``window_features``).

    ``before``: from the exchanges before this time only (a replay window); ``since``: from this time on.
    """
    settings = settings or Settings()
    known = link_inputs(store, engine, before=before, since=since)
    features = engine.execute(account_features(known.signals, known.accounts, known.events))
    with store.transaction():
        store.replace("account_features", rounded(features))
        run_window_features(store, engine, settings=settings, before=before, since=since)
    return store.read("account_features")


def run_window_features(
    store: Store, engine: Engine, *, settings: Settings, before: datetime | None = None, since: datetime | None = None
) -> None:
    """Each account's features per window of ``detect.window_hours`` (``window_features``; empty when off)."""
    windows = None
    if settings.detect.window_hours > 0:
        known = link_inputs(store, engine, before=before, since=since)
        windows = engine.execute(window_features(known.signals, known.accounts, events=known.events,
                                                 seconds=settings.detect.window_hours * 3600))
    with store.transaction():
        store.con.execute("DELETE FROM window_features")
        if windows is not None:
            store.append("window_features", rounded(windows))


def rounded(table: pa.Table, decimals: int = 9) -> pa.Table:
    """``table`` with float columns (and lists of floats) rounded to ``decimals``.

    Engines sum floats in parallel, in a varying order, so the last bits of a
    mean differ between runs; rounding makes scores and flags reproducible.
    """
    columns = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_floating(field.type):
            col = pc.round(col, decimals)
        elif pa.types.is_list(field.type) and pa.types.is_floating(field.type.value_type):
            col = _rounded_lists(col.combine_chunks(), decimals)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=table.schema)


def run_score(
    store: Store, features: pa.Table, *, settings: Settings, reference: Reference | None = None,
    clusters: pa.Table | None = None, cleared: frozenset[str] = frozenset(),
) -> Scoring:
    """Score accounts against the vetted ``reference`` (or the vetted population itself; ``scoring``).

    With the reference's ``window_features`` too, each account's most unusual
    window is scored as well (``detect.windows``) and can flag it on its own.
    ``account_scores`` is written by ``publish``, once campaign members are flagged too.
    """
    clusters = clusters if clusters is not None else store.read("account_clusters")
    scoring = score_population(features, clusters, settings=settings, reference=reference, cleared=cleared,
                               groups=components(store.read("account_links")))
    windows_ref = reference.windows if reference is not None else None
    if windows_ref is not None and windows_ref.num_rows and settings.detect.window_hours > 0:
        aside = set(scoring.set_aside.reasons)
        ids = windows_ref.column("account_id").to_pylist()
        kept = windows_ref.filter(pa.array([owner(i) not in aside for i in ids], pa.bool_()))
        windows = WindowDetector(make_scorer(settings.detect.scorer, True, settings.detect.k_neighbors),
                                 settings.detect.target_fpr, settings.detect.min_exchanges).fit(kept)
        flags = windows.flag(store.read("window_features"))
        scoring = replace(scoring, scores=_with_window_flags(scoring.scores, flags))
    return scoring


def _with_window_flags(scores: pa.Table, window_reasons: dict[str, str]) -> pa.Table:
    """Accounts flagged by a window keep their score; the window is their first reason."""
    if not window_reasons:
        return scores
    ids = scores.column("account_id").to_pylist()
    flagged = [bool(f) or a in window_reasons for a, f in zip(ids, scores.column("flagged").to_pylist(), strict=True)]
    reasons = [([window_reasons[a]] if a in window_reasons else []) + (r or [])
               for a, r in zip(ids, scores.column("reasons").to_pylist(), strict=True)]
    return scores.set_column(2, "flagged", pa.array(flagged, pa.bool_())).set_column(
        3, "reasons", pa.array(reasons, pa.list_(pa.string())))


def run_link(
    store: Store, engine: Engine, *, settings: Settings, reference_accounts: int = 0, before: datetime | None = None,
    since: datetime | None = None, inputs: LinkInputs | None = None, edges: pa.Table | None = None,
) -> pa.Table:
    """Link accounts (``account_links``) and cluster them (``account_clusters``); return the clusters.

    ``reference_accounts``: how many accounts the vetted reference kept (its ``reference_values``
    are the base rate of rarity, scaled by this population's size over that). ``before``, ``since``:
    from the exchanges in that time only. ``inputs``: these tables instead of the store's (an
    incremental scan's per-day aggregates, ``incremental.links``); ``edges``: their edges, computed
    already (``link.link_accounts``).
    """
    inputs = inputs or link_inputs(store, engine, before=before, since=since)
    if reference_accounts and store.count("reference_values"):
        accounts = int(engine.execute(inputs.signals.select("account_id").distinct().count()))
        inputs = replace(inputs, reference=engine.table("reference_values"),
                         reference_scale=accounts / reference_accounts)
    links = link_accounts(engine.execute, inputs, settings=settings.link, edges=edges)
    with store.transaction():
        store.replace("account_links", links.edges)
        store.replace("account_clusters", links.clusters)
    return links.clusters


def link_inputs(
    store: Store, engine: Engine, *, before: datetime | None = None, since: datetime | None = None
) -> LinkInputs:
    """The tables features and links read, as they were known before ``before`` (all of them: None),
    from ``since`` on (the scan's window; events are not cut: a release the day before the window
    still moves the window's first exchanges).

    Accounts are not cut: an account's sign-up facts are known from its first exchange.
    """
    partner = engine.table("partner_indicators") if store.count("partner_indicators") else None
    exchanges, signals, events = engine.table("exchanges"), engine.table("signals"), engine.table("events")
    if before is not None:
        cutoff = ibis.literal(before.astimezone(UTC), type="timestamp('UTC')")
        exchanges = exchanges.filter(exchanges.timestamp < cutoff)
        signals = signals.filter(signals.timestamp < cutoff)
        events = events.filter(events.timestamp < cutoff)
    if since is not None:
        start = ibis.literal(since.astimezone(UTC), type="timestamp('UTC')")
        exchanges = exchanges.filter(exchanges.timestamp >= start)
        signals = signals.filter(signals.timestamp >= start)
    return LinkInputs(exchanges, signals, engine.table("accounts"), events, partner)


def reference_slices(store: Store, engine: Engine, settings: Settings) -> Slices | None:
    """Each account's features per UTC-aligned slice of ``detect.reference_slice_hours``, slices of
    ``detect.reference_slice_min_exchanges`` or more (None when slices are off)."""
    hours = settings.detect.reference_slice_hours
    if hours <= 0:
        return None
    known = link_inputs(store, engine)
    windows = window_features(known.signals, known.accounts, events=known.events, seconds=hours * 3600)
    kept = windows.filter(windows.n_exchanges >= settings.detect.reference_slice_min_exchanges)
    return Slices(rounded(engine.execute(kept)), hours * 3600)


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Log how long a stage took (``distillguard -v``): where a slow scan spends its time."""
    start = time.perf_counter()
    yield
    log.info("%s took %.1f s", what, time.perf_counter() - start)


def publish(
    store: Store, out_dir: Path, *, settings: Settings, report: IngestReport, scoring: Scoring, clusters: pa.Table,
    traffic_dir: str, engine: Engine, reference_dir: str | None = None, cleared: frozenset[str] = frozenset(),
    since: datetime | None = None,
) -> ScanResult:
    """Decide and publish: campaigns, policy and the output files. ``since``: the scan's window began
    then (``scan --window``); the summary counts the exchanges in it. ``engine`` sums the
    campaign candidates' signals for their records (``decide.traffic``)."""
    det = scoring.det

    def traffic(members: pa.Table) -> MemberTraffic:  # the campaign candidates' signals, summed on the engine
        return member_traffic(engine.execute, member_traffic_exprs(
            engine.table("signals"), engine.table("events"), members=ibis.memtable(members), since=since))

    # The scored features carry each account's neighbour group: member bars must exclude it as scoring did.
    scores, campaigns, scored = find_campaigns(scoring.scores, clusters, features=scoring.features, det=det,
                                               settings=settings, store=store, cleared=cleared,
                                               edges=store.read("account_links"), since=since, traffic=traffic)
    within = "" if since is None else f" WHERE timestamp >= TIMESTAMPTZ '{since.astimezone(UTC).isoformat()}'"
    span = store.query(f"SELECT min(timestamp) AS lo, max(timestamp) AS hi, count(*) AS n FROM exchanges{within}"
                       ).to_pylist()[0]
    as_of = span["hi"] or datetime.now(UTC)
    policy = policy_table(scores, campaigns, as_of=as_of, ttl_days=settings.policy.ttl_days)
    with store.transaction():
        store.replace("account_scores", scores)
        store.replace("policy", policy)
        store.replace("campaigns", pa.table({
            "campaign_id": [c.campaign_id for c in campaigns],
            "record_json": [_json(c.as_json()) for c in campaigns],
        }))
    summary = ScanSummary.model_validate({
        "version": distillguard.__version__,
        "traffic_dir": traffic_dir,
        "engine": engine.name,
        "exchanges": span["n"],
        "quarantined": store.count("quarantine"),
        "first_seen": span["lo"].isoformat() if span["lo"] else None,
        "last_seen": span["hi"].isoformat() if span["hi"] else None,
        "threshold": det.threshold_ if np.isfinite(det.threshold_) else None,
        "threshold_units": "threshold multiples" if isinstance(det, Either) else "score",
        "member_threshold": _finite(det.threshold_at(settings.link.member_fpr)),
        "member_fpr": settings.link.member_fpr,
        "target_fpr": settings.detect.target_fpr,
        "scorer": det.scorer.name,
        "reference": reference_dir or "the scanned population",
        "reference_accounts_kept": scoring.reference_accounts,
        "reference_set_aside": {
            "accounts": len(scoring.set_aside.reasons), "by_reason": scoring.set_aside.counts(),
            "examples": dict(list(scoring.set_aside.reasons.items())[:20]),
        },
        "cleared_accounts": len(cleared),
        "ingest": report.__dict__,
        "settings": {"detect": settings.detect.model_dump(mode="json"), "link": settings.link.model_dump(mode="json")},
    })
    path = write_outputs(out_dir, accounts=scored, campaigns=campaigns, policy=policy, summary=summary)
    flagged = int(pc.sum(scores.column("flagged")).as_py() or 0)
    return ScanResult(report, scores.num_rows, flagged, [c.as_json() for c in campaigns], path)


def _rounded_lists(lists: pa.ListArray, decimals: int) -> pa.ListArray:
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    return pa.ListArray.from_arrays(offsets, pc.round(lists.flatten(), decimals), type=lists.type,
                                    mask=lists.is_null())


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _json(obj: Any) -> str:
    return orjson.dumps(obj).decode()
