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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

import distillguard
from distillguard.config import Settings
from distillguard.decide import find_campaigns, policy_table
from distillguard.detect import make_scorer
from distillguard.detect.base import Slices, owner
from distillguard.detect.either import Either
from distillguard.detect.windows import WindowDetector
from distillguard.engine import Engine, SparkEngine, make_engine
from distillguard.features import account_features
from distillguard.features.account import window_features
from distillguard.feedback import cleared_accounts, record_cleared
from distillguard.ingest import IngestReport, ingest_traffic_dir
from distillguard.link import LinkInputs, evidence_values, link_accounts, reference_values
from distillguard.link.communities import components
from distillguard.link.evidence import HOSTING_ASNS
from distillguard.records import ScanSummary
from distillguard.report import write_outputs
from distillguard.schema import SIGNALS, empty
from distillguard.scoring import (
    Reference,
    Scoring,
    score_accounts,
    score_population,
    vet_reference,
)
from distillguard.signals import INPUT_COLUMNS
from distillguard.signals.parallel import enrich_batches
from distillguard.store import Store

__all__ = ["PARALLEL_ENRICH_ROWS", "Prepared", "Progress", "ScanResult", "prepare", "publish",
           "run_enrich", "run_features", "run_link", "run_score", "scan", "score_accounts"]

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
    store: Store, features: pa.Table, settings: Settings, reference: Reference | None = None, *,
    clusters: pa.Table | None = None, cleared: frozenset[str] = frozenset(),
) -> Scoring:
    """Score accounts against the vetted ``reference`` (or the vetted population itself; ``scoring``).

    With the reference's ``window_features`` too, each account's most unusual
    window is scored as well (``detect.windows``) and can flag it on its own.
    ``account_scores`` is written by ``publish``, once campaign members are flagged too.
    """
    clusters = clusters if clusters is not None else store.read("account_clusters")
    scoring = score_population(features, clusters, settings, reference=reference, cleared=cleared,
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


def run_link(store: Store, engine: Engine, settings: Settings, reference_accounts: int = 0) -> pa.Table:
    """Link accounts (``account_links``) and cluster them (``account_clusters``); return the clusters.

    ``reference_accounts``: how many accounts the vetted reference kept (its ``reference_values``
    are the base rate of rarity, scaled by this population's size over that).
    """
    inputs = _link_inputs(store, engine)
    if reference_accounts and store.count("reference_values"):
        accounts = store.query("SELECT count(DISTINCT account_id) AS n FROM signals").column("n")[0].as_py() or 0
        inputs = replace(inputs, reference=engine.table("reference_values"),
                         reference_scale=accounts / reference_accounts)
    links = link_accounts(engine.execute, inputs, settings.link)
    with store.transaction():
        store.replace("account_links", links.edges)
        store.replace("account_clusters", links.clusters)
    return links.clusters


def _link_inputs(store: Store, engine: Engine) -> LinkInputs:
    partner = engine.table("partner_indicators") if store.count("partner_indicators") else None
    return LinkInputs(engine.table("exchanges"), engine.table("signals"), engine.table("accounts"),
                      engine.table("events"), partner)


def scan(
    traffic_dir: Path, out_dir: Path, store: Store, settings: Settings | None = None,
    engine_name: str = "duckdb", progress: Progress | None = None, reference_dir: Path | None = None,
    benign_file: Path | None = None,
) -> ScanResult:
    """Ingest ``traffic_dir`` into ``store``, run every stage, write ``out_dir``.

    ``reference_dir``: an earlier period of traffic, as it was (attackers and all); it is
    processed the same way in its own store (``<db>.reference.duckdb``), vetted (its campaign
    members and flagged accounts set aside, ``scoring``) and the detector is fitted and
    calibrated on the accounts it kept. ``benign_file``: accounts an analyst cleared
    (``feedback``), remembered in ``store`` for later scans.
    """
    settings = settings or Settings()
    reference = None
    if benign_file is not None:
        record_cleared(store, benign_file)
    cleared = cleared_accounts(store)
    base_rates = empty("reference_values")
    if reference_dir is not None:
        with Store.open(store.path.with_suffix(".reference.duckdb")) as ref_store:
            reference, base_rates = prepare_reference(reference_dir, ref_store, settings, engine_name, progress,
                                                      cleared)
    store.replace("reference_values", base_rates)
    kept = reference.features.num_rows - len(reference.set_aside.reasons) if reference and reference.set_aside else 0
    report, features, clusters, _ = prepare(traffic_dir, store, settings, engine_name, progress,
                                            reference_accounts=kept)
    assert clusters is not None  # link=True
    with _timed("score"):
        scoring = run_score(store, features, settings, reference, clusters=clusters, cleared=cleared)
    with _timed("publish"):
        return publish(store, out_dir, settings, report, features, scoring, clusters, str(traffic_dir),
                       engine_name, str(reference_dir) if reference_dir else None, cleared=cleared)


def prepare_reference(
    reference_dir: Path, ref_store: Store, settings: Settings, engine_name: str, progress: Progress | None,
    cleared: frozenset[str],
) -> tuple[Reference, pa.Table]:
    """Prepare and vet a reference period; return it and its evidence values (``reference_values``),
    counted over the accounts it kept: the base rate of the scan's link weights."""
    ref = prepare(reference_dir, ref_store, settings, engine_name, progress, "reference", slices=True)
    assert ref.clusters is not None  # link=True
    with _timed("reference: vetting"):
        reference = Reference(ref.features, ref.clusters, ref.slices, ref_store.read("window_features"),
                              groups=components(ref_store.read("account_links")))
        aside = vet_reference(reference, settings, cleared)
        engine = make_engine(engine_name, ref_store)
        try:
            link = settings.link
            holders = engine.execute(evidence_values(_link_inputs(ref_store, engine), link.min_template_share,
                                                     HOSTING_ASNS + tuple(link.hosting_asns)))
        finally:
            engine.close()
        kept = {a for a in ref.features.column("account_id").to_pylist() if a not in aside.reasons}
    return replace(reference, set_aside=aside), reference_values(holders, kept)


class Prepared(NamedTuple):
    """What ``prepare`` made: the ingest report, account features, clusters (when linked) and
    slices (when asked for)."""

    report: IngestReport
    features: pa.Table
    clusters: pa.Table | None
    slices: Slices | None


def prepare(
    traffic_dir: Path, store: Store, settings: Settings, engine_name: str, progress: Progress | None,
    label: str = "ingest", *, link: bool = True, slices: bool = False, reference_accounts: int = 0,
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
            clusters = run_link(store, engine, settings, reference_accounts) if link else None
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
    store: Store, out_dir: Path, settings: Settings, report: IngestReport, features: pa.Table, scoring: Scoring,
    clusters: pa.Table, traffic_dir: str, engine_name: str, reference_dir: str | None = None, *,
    cleared: frozenset[str] = frozenset(),
) -> ScanResult:
    """Decide and publish: campaigns, policy and the output files."""
    det = scoring.det
    # The scored features carry each account's neighbour group: member bars must exclude it as scoring did.
    scores, campaigns, scored = find_campaigns(scoring.scores, clusters, scoring.features, det, settings, store,
                                               cleared=cleared)
    span = store.query("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM exchanges").to_pylist()[0]
    as_of = span["hi"] or datetime.now(UTC)
    policy = policy_table(scores, campaigns, as_of, settings.policy.ttl_days)
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
        "engine": engine_name,
        "exchanges": store.count("exchanges"),
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
    })
    path = write_outputs(out_dir, scored, campaigns, policy, summary)
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
