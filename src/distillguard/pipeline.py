"""The scan pipeline: ingest → enrich → features → score → link → decide → publish.

Each stage reads the tables the previous one wrote to the store and writes its
own in one transaction, so an interrupted scan leaves a consistent store and a
re-run repeats only what is needed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

import distillguard
from distillguard.config import Settings
from distillguard.detect import Calibrated, make_scorer
from distillguard.detect.base import Slices
from distillguard.detect.windows import WindowDetector
from distillguard.engine import Engine, SparkEngine, make_engine
from distillguard.features import account_features
from distillguard.features.account import window_features
from distillguard.ingest import IngestReport, ingest_traffic_dir
from distillguard.link import LinkInputs, link_accounts
from distillguard.link.campaigns import build_campaigns, select_campaigns
from distillguard.link.details import campaign_details
from distillguard.policy import decide
from distillguard.report import write_outputs
from distillguard.schema import SIGNALS
from distillguard.signals import INPUT_COLUMNS
from distillguard.signals.parallel import enrich_batches
from distillguard.store import Store

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
    store: Store, engine: Engine | None = None, batch_rows: int = 50_000, progress: Progress | None = None
) -> int:
    """Enrich every exchange into the ``signals`` table; return the row count.

    Locally (DuckDB batches) by default; on Spark through ``mapInArrow`` when
    ``engine`` is a ``SparkEngine``. Either way the same ``signals.enrich`` runs.
    """
    total = store.count("exchanges")
    if isinstance(engine, SparkEngine):
        with store.transaction(), store.registered(engine.enrich_to_arrow()) as view:
            store.con.execute("DELETE FROM signals")
            store.con.execute(f"INSERT INTO signals SELECT {', '.join(SIGNALS.names)} FROM {view}")
        if progress:
            progress("enrich", total, total)
        return total
    workers = (os.cpu_count() or 1) if total >= PARALLEL_ENRICH_ROWS else 1
    with store.rebuilt("signals") as staging:
        for table in enrich_batches(store.batches("exchanges", INPUT_COLUMNS, batch_rows), workers):
            store.append("signals", table, into=staging)
            if progress:
                progress("enrich", table.num_rows, total)
    return total


def run_features(store: Store, engine: Engine, settings: Settings | None = None) -> pa.Table:
    """Account features over the whole period (returned) and per window (``window_features``)."""
    settings = settings or Settings()
    signals, accounts, events = engine.table("signals"), engine.table("accounts"), engine.table("events")
    features = engine.execute(account_features(signals, accounts, events))
    windows = None
    if settings.detect.window_hours > 0:
        windows = engine.execute(window_features(signals, accounts, events, settings.detect.window_hours * 3600))
    with store.transaction():
        store.replace("account_features", rounded(features))
        store.con.execute("DELETE FROM window_features")
        if windows is not None:
            store.append("window_features", rounded(windows))
    return store.read("account_features")


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
    store: Store, features: pa.Table, settings: Settings, reference: pa.Table | None = None,
    reference_windows: pa.Table | None = None, reference_slices: Slices | None = None,
) -> tuple[pa.Table, Calibrated]:
    """Score accounts; fit and calibrate on ``reference`` features when given (its ``reference_slices``
    as further benign neighbours).

    With the reference's ``window_features`` too, each account's most unusual
    window is scored as well (``detect.windows``) and can flag it on its own.
    ``account_scores`` is written by ``publish``, once campaign members are flagged too.
    """
    scorer = make_scorer(settings.detect.scorer, reference is not None, settings.detect.k_neighbors)
    det = Calibrated(scorer, settings.detect.target_fpr, settings.detect.min_exchanges)
    det.fit(features, reference, reference_slices)
    scores = score_accounts(det, features)
    if reference_windows is not None and reference_windows.num_rows and settings.detect.window_hours > 0:
        windows = WindowDetector(make_scorer(settings.detect.scorer, True, settings.detect.k_neighbors),
                                 settings.detect.target_fpr, settings.detect.min_exchanges).fit(reference_windows)
        scores = _with_window_flags(scores, windows.flag(store.read("window_features")))
    return scores, det


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


def score_accounts(det: Calibrated, features: pa.Table, explain: bool = True) -> pa.Table:
    """account_id, score, flagged, reasons (``schema.ACCOUNT_SCORES``) from a fitted detector."""
    scores = det.score(features) if features.num_rows else np.zeros(0)
    flagged = det.flag(features, scores) if features.num_rows else np.zeros(0, bool)
    reasons = det.explain(features) if explain else [[] for _ in range(features.num_rows)]
    return pa.table({
        "account_id": features.column("account_id"),
        "score": pa.array(scores, pa.float64()),
        "flagged": pa.array(flagged, pa.bool_()),
        "reasons": pa.array(reasons, pa.list_(pa.string())),
    })


def find_campaigns(
    scores: pa.Table, clusters: pa.Table, features: pa.Table, det: Calibrated, settings: Settings,
    store: Store | None = None,
) -> tuple[pa.Table, list[dict[str, Any]], pa.Table]:
    """Campaigns from clusters; returns (scores with members flagged, campaigns, account view).

    With ``store``, each campaign record carries its details (infrastructure,
    timeline, links, release pivot); replay leaves them out.
    """
    view = account_view(scores, clusters, features)
    candidates = select_campaigns(view, min_accounts=settings.link.min_campaign_accounts,
                                  min_suspicious_share=settings.link.min_suspicious_share,
                                  suspicious_above=det.threshold_at(settings.link.member_fpr))
    details = campaign_details(store, candidates) if store is not None else {}
    campaigns = build_campaigns(candidates, details)
    return _flag_campaign_members(scores, campaigns), campaigns, _flag_campaign_members(view, campaigns)


def run_link(store: Store, engine: Engine, settings: Settings) -> pa.Table:
    """Link accounts (``account_links``) and cluster them (``account_clusters``); return the clusters."""
    partner = engine.table("partner_indicators") if store.count("partner_indicators") else None
    inputs = LinkInputs(engine.table("exchanges"), engine.table("signals"), engine.table("accounts"),
                        engine.table("events"), partner)
    links = link_accounts(engine.execute, inputs, settings.link)
    with store.transaction():
        store.replace("account_links", links.edges)
        store.replace("account_clusters", links.clusters)
    return links.clusters


def scan(
    traffic_dir: Path, out_dir: Path, store: Store, settings: Settings | None = None,
    engine_name: str = "duckdb", progress: Progress | None = None, reference_dir: Path | None = None,
) -> ScanResult:
    """Ingest ``traffic_dir`` into ``store``, run every stage, write ``out_dir``.

    ``reference_dir``: traffic known to be benign; it is processed the same way
    in its own store (``<db>.reference.duckdb``) and the detector is fitted and
    calibrated on its features only.
    """
    settings = settings or Settings()
    reference = reference_windows = reference_slices = None
    if reference_dir is not None:
        with Store.open(store.path.with_suffix(".reference.duckdb")) as ref_store:
            ref = prepare(reference_dir, ref_store, settings, engine_name, progress, "reference", False,
                          slices=True)
            reference, reference_slices = ref.features, ref.slices
            reference_windows = ref_store.read("window_features")
    report, features, clusters, _ = prepare(traffic_dir, store, settings, engine_name, progress)
    assert clusters is not None  # link=True
    with _timed("score"):
        scores, det = run_score(store, features, settings, reference, reference_windows, reference_slices)
    with _timed("publish"):
        return publish(store, out_dir, settings, report, features, scores, det, clusters, str(traffic_dir),
                       engine_name, str(reference_dir) if reference_dir else None)


class Prepared(NamedTuple):
    """What ``prepare`` made: the ingest report, account features, clusters (when linked) and
    slices (when asked for)."""

    report: IngestReport
    features: pa.Table
    clusters: pa.Table | None
    slices: Slices | None


def prepare(
    traffic_dir: Path, store: Store, settings: Settings, engine_name: str, progress: Progress | None,
    label: str = "ingest", link: bool = True, slices: bool = False,
) -> Prepared:
    """Ingest, enrich, featurize (and link) ``traffic_dir`` in ``store``: every stage before scoring.

    ``slices``: also the accounts' slices (``reference_slices``; for a benign reference).
    """
    with _timed(f"{label}: ingest"):
        report = ingest_traffic_dir(traffic_dir, store, settings.ingest,
                                    (lambda n: progress(label, n, None)) if progress else None)
    engine = make_engine(engine_name, store)
    cut = None
    try:
        with _timed(f"{label}: enrich"):
            run_enrich(store, engine, progress=progress)
        with _timed(f"{label}: features"):
            features = run_features(store, engine, settings)
            cut = reference_slices(engine, settings) if slices else None
        with _timed(f"{label}: link"):
            clusters = run_link(store, engine, settings) if link else None
    finally:
        engine.close()
    return Prepared(report, features, clusters, cut)


def reference_slices(engine: Engine, settings: Settings) -> Slices | None:
    """Each account's features per UTC-aligned slice of ``detect.reference_slice_hours``, slices of
    ``detect.reference_slice_min_exchanges`` or more (None when slices are off)."""
    hours = settings.detect.reference_slice_hours
    if hours <= 0:
        return None
    windows = window_features(engine.table("signals"), engine.table("accounts"), engine.table("events"),
                              hours * 3600)
    kept = windows.filter(windows.n_exchanges >= settings.detect.reference_slice_min_exchanges)
    return Slices(rounded(engine.execute(kept)), hours * 3600)


@contextmanager
def _timed(what: str) -> Iterator[None]:
    """Log how long a stage took (``distillguard -v``): where a slow scan spends its time."""
    start = time.perf_counter()
    yield
    log.info("%s took %.1f s", what, time.perf_counter() - start)


def publish(
    store: Store, out_dir: Path, settings: Settings, report: IngestReport, features: pa.Table, scores: pa.Table,
    det: Calibrated, clusters: pa.Table, traffic_dir: str, engine_name: str, reference_dir: str | None = None,
) -> ScanResult:
    """Decide and publish: campaigns, policy and the output files."""
    scores, campaigns, scored = find_campaigns(scores, clusters, features, det, settings, store)
    span = store.query("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM exchanges").to_pylist()[0]
    as_of = span["hi"] or datetime.now(UTC)
    policy = decide(scores, campaigns, as_of, settings.policy.ttl_days)
    with store.transaction():
        store.replace("account_scores", scores)
        store.replace("policy", policy)
        store.replace("campaigns", pa.table({
            "campaign_id": [c["campaign_id"] for c in campaigns],
            "record_json": [_json(c) for c in campaigns],
        }))
    summary = {
        "version": distillguard.__version__,
        "traffic_dir": traffic_dir,
        "engine": engine_name,
        "exchanges": store.count("exchanges"),
        "quarantined": store.count("quarantine"),
        "first_seen": span["lo"].isoformat() if span["lo"] else None,
        "last_seen": span["hi"].isoformat() if span["hi"] else None,
        "threshold": det.threshold_ if np.isfinite(det.threshold_) else None,
        "member_threshold": det.threshold_at(settings.link.member_fpr),
        "member_fpr": settings.link.member_fpr,
        "target_fpr": settings.detect.target_fpr,
        "scorer": det.scorer.name,
        "reference": reference_dir or "the scanned population",
        "ingest": report.__dict__,
    }
    path = write_outputs(out_dir, scored, campaigns, policy, summary)
    flagged = int(pc.sum(scores.column("flagged")).as_py() or 0)
    return ScanResult(report, scores.num_rows, flagged, campaigns, path)


def _flag_campaign_members(scores: pa.Table, campaigns: list[dict[str, Any]]) -> pa.Table:
    """Members of a campaign are flagged, with the campaign as their first reason."""
    member_of = {a: c for c in campaigns for a in c["account_ids"]}
    flagged, reasons = [], []
    for account, flag, why in zip(scores.column("account_id").to_pylist(), scores.column("flagged").to_pylist(),
                                  scores.column("reasons").to_pylist(), strict=True):
        c = member_of.get(account)
        flagged.append(bool(flag) or c is not None)
        reasons.append(([f"member of {c['campaign_id']} ({len(c['account_ids'])} linked accounts)"] if c else [])
                       + (why or []))
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


def _rounded_lists(lists: pa.ListArray, decimals: int) -> pa.ListArray:
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    return pa.ListArray.from_arrays(offsets, pc.round(lists.flatten(), decimals), type=lists.type,
                                    mask=lists.is_null())


def _json(obj: Any) -> str:
    return orjson.dumps(obj).decode()
