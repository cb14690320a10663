"""Streaming replay: run detection window by window in time order, as a provider would each hour.

At the end of every window the detector sees only the exchanges before it:
features, scores, links and campaigns are recomputed on that prefix and each
account's state is recorded. Enrichment is per exchange and stateless, so it is
computed once up front. The detector is refitted at every window: on the same
length of benign reference traffic when a reference is given (so a day-old
account is compared with day-old benign accounts, and with the reference's
daily slices as ``scan`` does), else on the prefix itself.

Output (``OUT_DIR``):
- ``replay.parquet``: one row per (window_end, account seen so far) with the
  account's cumulative ``n_exchanges``, ``score`` and ``flagged``;
- ``first_flagged.parquet``: per account, when it was first flagged and how many
  exchanges it had sent by then (null if never);
- ``replay.json``: the settings and counts.
``distillguard bench TRAFFIC OUT --replay OUT_DIR`` turns these into time-to-detect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.config import Settings
from distillguard.decide import find_campaigns
from distillguard.detect import Calibrated, make_scorer
from distillguard.detect.base import Slices
from distillguard.engine import DuckDBEngine
from distillguard.errors import InputError
from distillguard.features import account_features
from distillguard.ingest import ingest_traffic_dir
from distillguard.link import LinkInputs, link_accounts
from distillguard.pipeline import prepare, run_enrich, score_accounts
from distillguard.store import Store

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class ReplayResult:
    windows: int
    accounts_flagged: int
    out_dir: Path


def replay(
    traffic_dir: Path, out_dir: Path, store: Store, settings: Settings | None = None,
    window: timedelta = timedelta(hours=1), reference_dir: Path | None = None, progress: Progress | None = None,
) -> ReplayResult:
    """Replay ``traffic_dir`` in windows of ``window``; write ``out_dir``."""
    settings = settings or Settings()
    if window <= timedelta(0):
        raise InputError(f"window must be positive, got {window}")
    ref_engine = ref_start = all_slices = slice_windows = None
    if reference_dir is not None:
        ref_store = Store.open(store.path.with_suffix(".reference.duckdb"))
        all_slices = prepare(reference_dir, ref_store, settings, "duckdb", progress, "reference", link=False,
                             slices=True).slices
        slice_windows = _window_indices(all_slices)
        ref_engine = DuckDBEngine(ref_store)
        ref_start = ref_store.query("SELECT min(timestamp) AS lo FROM exchanges").to_pylist()[0]["lo"]
    ingest_traffic_dir(traffic_dir, store, settings.ingest)
    engine = DuckDBEngine(store)
    run_enrich(store, engine, progress=progress)
    span = store.query("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM exchanges").to_pylist()[0]
    if span["lo"] is None:
        raise InputError(f"no valid exchanges in {traffic_dir}")
    with_reference = ref_engine is not None and ref_start is not None  # else each window is its own reference
    det = Calibrated(make_scorer(settings.detect.scorer, ref_engine is not None, settings.detect.k_neighbors),
                     settings.detect.target_fpr, settings.detect.min_exchanges, conformal=with_reference)
    ends = []
    t = span["lo"] + window
    while t < span["hi"] + window:
        ends.append(t)
        t += window
    parts = []
    for end in ends:
        reference = slices = None
        if ref_engine is not None and ref_start is not None:  # the same elapsed time of benign traffic
            ref_end = ref_start + (end - span["lo"])
            reference = ref_engine.execute(_prefix_features(ref_engine, ref_end))
            slices = _complete_before(all_slices, slice_windows, ref_end)
        parts.append(_window(engine, end, det, reference, settings, slices))
        if progress:
            progress("replay", 1, len(ends))
    states = pa.concat_tables(parts) if parts else pa.table({})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(states, out_dir / "replay.parquet")
    first = _first_flagged(states)
    pq.write_table(first, out_dir / "first_flagged.parquet")
    flagged = int(pc.sum(pc.is_valid(first.column("first_flagged_at"))).as_py() or 0)
    (out_dir / "replay.json").write_bytes(orjson.dumps({
        "traffic_dir": str(traffic_dir), "window_seconds": window.total_seconds(), "windows": len(ends),
        "reference": str(reference_dir) if reference_dir else None, "scorer": det.scorer.name,
        "accounts_flagged": flagged,
    }, option=orjson.OPT_INDENT_2))
    return ReplayResult(len(ends), flagged, out_dir)


def _prefix(engine: DuckDBEngine, end: datetime) -> LinkInputs:
    """exchanges, signals, accounts and events as they were known before ``end``."""
    cutoff = ibis.literal(end.astimezone(UTC), type="timestamp('UTC')")
    exchanges, signals, events = engine.table("exchanges"), engine.table("signals"), engine.table("events")
    return LinkInputs(exchanges.filter(exchanges.timestamp < cutoff), signals.filter(signals.timestamp < cutoff),
                      engine.table("accounts"), events.filter(events.timestamp < cutoff))


def _prefix_features(engine: DuckDBEngine, end: datetime) -> ir.Table:
    known = _prefix(engine, end)
    return account_features(known.signals, known.accounts, known.events)


def _window_indices(slices: Slices | None) -> np.ndarray | None:
    """Each slice's window index (the ``@`` suffix of its id), read once for every replay window."""
    if slices is None:
        return None
    return np.array([int(i.rsplit("@", 1)[1]) for i in slices.features.column("account_id").to_pylist()],
                    dtype=np.int64)


def _complete_before(slices: Slices | None, windows: np.ndarray | None, end: datetime) -> Slices | None:
    """The slices (window indices ``windows``) whose whole window lies before ``end``: what the
    reference had shown by then.

    (Recomputing partial slices at every window doubled the replay's cost; a day in
    progress is still seen through the reference accounts' own prefix features.)
    """
    if slices is None or windows is None:
        return None
    last = end.timestamp() // slices.seconds  # windows before this index are complete
    return Slices(slices.features.filter(pa.array(windows < last)), slices.seconds)


def _window(
    engine: DuckDBEngine, end: datetime, det: Calibrated, reference: pa.Table | None, settings: Settings,
    slices: Slices | None = None,
) -> pa.Table:
    """Account states from the exchanges before ``end``."""
    known = _prefix(engine, end)
    signals = known.signals
    features = engine.execute(account_features(signals, known.accounts, known.events))
    det.fit(features if reference is None else reference, slices=slices)
    scores = score_accounts(det, features, explain=False)
    clusters = link_accounts(engine.execute, known, settings.link).clusters
    scores, _, view = find_campaigns(scores, clusters, features, det, settings)
    return pa.table({
        "window_end": pa.array([end] * view.num_rows, pa.timestamp("us", tz="UTC")),
        "account_id": view.column("account_id"),
        "n_exchanges": view.column("n_exchanges"),
        "score": view.column("score"),
        "flagged": view.column("flagged"),
    })


def _first_flagged(states: pa.Table) -> pa.Table:
    """Per account: first window end at which it was flagged, and its exchanges by then."""
    first: dict[str, tuple[datetime | None, int | None]] = {}
    for row in states.to_pylist():  # ordered by window
        account = row["account_id"]
        if row["flagged"] and (account not in first or first[account][0] is None):
            first[account] = (row["window_end"], row["n_exchanges"])
        else:
            first.setdefault(account, (None, None))
    ids = sorted(first)
    return pa.table({
        "account_id": pa.array(ids, pa.string()),
        "first_flagged_at": pa.array([first[a][0] for a in ids], pa.timestamp("us", tz="UTC")),
        "exchanges_before_flag": pa.array([first[a][1] for a in ids], pa.int64()),
    })
