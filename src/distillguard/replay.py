"""Streaming replay: run detection window by window in time order, as a provider would each hour.

At the end of every window the scan sees only the exchanges before it: ``Scan.window``
runs the same stages as ``scan`` (features, links, scores with window flags, campaigns,
partner indicators) on that prefix, so the last window, which holds every exchange, is
the scan. Enrichment is per exchange and stateless, so it is computed once up front. A
reference is a past period, known whole: it is vetted once, and each window is scored
against the same elapsed time of it (a day-old account is compared with day-old reference
accounts, and with the reference's complete daily slices); without one, each window's
population is its own reference, vetted.

On DuckDB (the default) the prefix is kept as per-day aggregates that each window only
extends (``incremental.prefix``): features of the accounts the window's exchanges touched
are merged again, and links read the aggregates, so the per-exchange work grows with the
traffic rather than with traffic × windows (418 s for 337 hourly windows of 322k exchanges
before; ``benchmarks/incremental.py``). On Spark each window is computed from the exchanges.

Output (``OUT_DIR``):
- ``replay.parquet``: one row per (window_end, account seen so far) with the
  account's cumulative ``n_exchanges``, ``score`` and ``flagged``;
- ``first_flagged.parquet``: per account, its first exchange, when it was first
  flagged and how many exchanges it had sent by then (null if never);
- ``replay.json``: the settings, counts and ``time_to_flag`` (hours from an account's
  first exchange to its first flag, and exchanges sent by then: median and 90th percentile).
``distillguard bench TRAFFIC OUT --replay OUT_DIR`` turns these into time-to-detect per campaign.

The detector is refitted every window, so a warning it gives (a reference too small to
certify the target false-positive rate) would repeat once per window; the replay lets
the first through and then says how many more it held back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.config import Settings
from distillguard.detect.base import Slices
from distillguard.errors import InputError
from distillguard.features import account_features
from distillguard.feedback import cleared_accounts
from distillguard.incremental.links import CompiledEdges, window_link_inputs
from distillguard.incremental.prefix import Prefix
from distillguard.incremental.window import ALL_DAYS
from distillguard.pipeline import Progress, Scan
from distillguard.schema import empty
from distillguard.scoring import Reference
from distillguard.stages import link_inputs, rounded
from distillguard.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    windows: int
    accounts_flagged: int
    out_dir: Path
    time_to_flag: dict[str, Any] = field(default_factory=dict)  # see ``time_to_flag``


def replay(
    traffic_dir: Path, out_dir: Path, *, store: Store, settings: Settings | None = None,
    window: timedelta = timedelta(hours=1), reference_dir: Path | None = None, engine_name: str = "duckdb",
    progress: Progress | None = None, incremental: bool = True,
) -> ReplayResult:
    """Replay ``traffic_dir`` in windows of ``window``; write ``out_dir``.

    ``incremental`` (DuckDB only): keep the prefix as per-day aggregates that each window extends;
    False computes each window from the exchanges (the same states, slower: for comparison).
    """
    incremental = incremental and engine_name == "duckdb"
    settings = settings or Settings()
    if window <= timedelta(0):
        raise InputError(f"window must be positive, got {window}")
    with ExitStack() as stack:
        stack.enter_context(_repeats_held_back("distillguard.detect.calibrated"))
        run = stack.enter_context(Scan(store, settings=settings, engine=engine_name, progress=progress))
        cleared = cleared_accounts(store)
        past: ReferencePeriod | None = None
        if reference_dir is not None:
            ref_store = stack.enter_context(Store.open(store.path.with_suffix(".reference.duckdb")))
            ref = stack.enter_context(Scan(ref_store, settings=settings, engine=engine_name, progress=progress,
                                           label="reference"))
            whole, base_rates = ref.vetted_reference(reference_dir, cleared=cleared)
            store.replace("reference_values", base_rates)
            past = ReferencePeriod(ref, whole, incremental=incremental)
        else:
            store.replace("reference_values", empty("reference_values"))
        run.ingest(traffic_dir)
        run.enrich()
        prefix = Prefix(store, temporary=True) if incremental else None
        compiled: CompiledEdges | None = None
        span = store.query("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM exchanges").to_pylist()[0]
        if span["lo"] is None:
            raise InputError(f"no valid exchanges in {traffic_dir}")
        ends = []
        t = span["lo"] + window
        while t < span["hi"] + window:
            ends.append(t)
            t += window
        parts = []
        for end in ends:
            reference = past.at(end - span["lo"]) if past is not None else None
            features = inputs = edges = None
            if prefix is not None:
                prefix.advance(end)
                features = prefix.features
                inputs = window_link_inputs(store, run.engine, first_day=ALL_DAYS,
                                            reference_accounts=past.kept if past else 0)
                compiled = compiled or CompiledEdges(store, inputs, settings.link)
                edges = compiled()
            kept = 0 if inputs is not None else past.kept if past else 0  # the inputs hold the scaled reference
            state = run.window(end, reference=reference, reference_accounts=kept, cleared=cleared, features=features,
                               inputs=inputs, edges=edges)
            parts.append(state.add_column(0, "window_end", pa.array([end] * state.num_rows,
                                                                     pa.timestamp("us", tz="UTC"))))
            if progress:
                progress("replay", 1, len(ends))
        started = store.query("SELECT account_id, min(timestamp) AS first_seen FROM exchanges GROUP BY account_id")
        if prefix is not None:  # the store's features are the last window's, as a scan leaves them
            store.replace("account_features", prefix.features)
    states = pa.concat_tables(parts) if parts else pa.table({})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(states, out_dir / "replay.parquet")
    first = _with_first_seen(_first_flagged(states), started)
    pq.write_table(first, out_dir / "first_flagged.parquet")
    flagged = int(pc.sum(pc.is_valid(first.column("first_flagged_at"))).as_py() or 0)
    timing = time_to_flag(first)
    (out_dir / "replay.json").write_bytes(orjson.dumps({
        "traffic_dir": str(traffic_dir), "window_seconds": window.total_seconds(), "windows": len(ends),
        "reference": str(reference_dir) if reference_dir else None, "engine": engine_name,
        "scorer": settings.detect.scorer, "accounts_flagged": flagged, "time_to_flag": timing,
    }, option=orjson.OPT_INDENT_2))
    return ReplayResult(len(ends), flagged, out_dir, timing)


def time_to_flag(first: pa.Table) -> dict[str, Any]:
    """Over the accounts ever flagged: hours from each one's first exchange to the end of the window that
    first flagged it, and the exchanges it had sent by then (median and 90th percentile; None when none).

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 2, 1, tzinfo=UTC)
    >>> first = pa.table({"account_id": ["a", "b", "c"], "first_seen": [t0, t0, t0],
    ...                   "first_flagged_at": [t0 + timedelta(hours=1), t0 + timedelta(hours=3), None],
    ...                   "exchanges_before_flag": [10, 30, None]})
    >>> time_to_flag(first)
    {'accounts': 2, 'median_hours': 2.0, 'p90_hours': 2.8, 'median_exchanges': 20.0, 'p90_exchanges': 28.0}
    """
    rows = [r for r in first.to_pylist() if r["first_flagged_at"] is not None]
    hours = [(r["first_flagged_at"] - r["first_seen"]).total_seconds() / 3600 for r in rows]
    sent = [float(r["exchanges_before_flag"]) for r in rows]

    def q(values: list[float], p: float) -> float | None:
        return round(float(np.quantile(values, p)), 2) if values else None

    return {"accounts": len(rows), "median_hours": q(hours, 0.5), "p90_hours": q(hours, 0.9),
            "median_exchanges": q(sent, 0.5), "p90_exchanges": q(sent, 0.9)}


def _with_first_seen(first: pa.Table, started: pa.Table) -> pa.Table:
    """``first`` with each account's first exchange (``first_seen``) after its id."""
    seen = dict(zip(started.column("account_id").to_pylist(), started.column("first_seen").to_pylist(), strict=True))
    ids = first.column("account_id").to_pylist()
    return first.add_column(1, "first_seen", pa.array([seen.get(a) for a in ids], pa.timestamp("us", tz="UTC")))


@contextmanager
def _repeats_held_back(logger: str) -> Iterator[None]:
    """Let each kind of warning (its message template) of ``logger`` through once; count the repeats and say
    how many there were at the end."""
    seen: set[object] = set()
    held = 0

    def once(record: logging.LogRecord) -> bool:
        nonlocal held
        if record.msg in seen:
            held += 1
            return False
        seen.add(record.msg)
        return True

    target = logging.getLogger(logger)
    target.addFilter(once)
    try:
        yield
    finally:
        target.removeFilter(once)
        if held:
            log.warning("%d more warning(s) like the above from %s held back (the detector is refitted every "
                        "window)", held, logger)


class ReferencePeriod:
    """A vetted reference period, as it had shown itself after a given elapsed time."""

    def __init__(self, run: Scan, whole: Reference, *, incremental: bool = True) -> None:
        self.run, self.whole = run, whole
        # Its prefix as per-day aggregates in temporary tables: the store's own stay as prepared.
        self._prefix = Prefix(run.store, temporary=True) if incremental and run.engine_name == "duckdb" else None
        span = run.store.query("SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM exchanges").to_pylist()[0]
        self.start, self.last = span["lo"], span["hi"]
        assert whole.set_aside is not None  # vetted
        self.kept = whole.features.num_rows - len(whole.set_aside.reasons)
        self._slice_windows = _window_indices(whole.slices.features) if whole.slices is not None else None
        self._windows = _window_indices(whole.windows) if whole.windows is not None else None

    def at(self, elapsed: timedelta) -> Reference:
        """The reference after ``elapsed``: its accounts' features over that prefix, the slices and
        windows complete by then; what vetting set aside stays set aside. Past its last exchange,
        the whole period (what ``scan`` uses)."""
        if self.start is None or self.start + elapsed > self.last:
            return self.whole
        end = self.start + elapsed
        if self._prefix is not None:
            self._prefix.advance(end)
            features = self._prefix.features
        else:
            known = link_inputs(self.run.store, self.run.engine, before=end)
            features = rounded(self.run.engine.execute(account_features(known.signals, known.accounts,
                                                                        known.events)))
        slices = self.whole.slices
        if slices is not None and self._slice_windows is not None:
            slices = Slices(_complete_before(slices.features, self._slice_windows, slices.seconds, end), slices.seconds)
        windows = self.whole.windows
        if windows is not None and self._windows is not None:
            seconds = self.run.settings.detect.window_hours * 3600
            windows = _complete_before(windows, self._windows, seconds, end) if seconds > 0 else windows
        return replace(self.whole, features=features, slices=slices, windows=windows)


def _window_indices(table: pa.Table) -> np.ndarray:
    """Each slice's or window's index (the ``@`` suffix of its id), read once for every replay window."""
    return np.array([int(i.rsplit("@", 1)[1]) for i in table.column("account_id").to_pylist()], dtype=np.int64)


def _complete_before(table: pa.Table, indices: np.ndarray, seconds: float, end: datetime) -> pa.Table:
    """The rows (window ``indices`` of ``seconds``) whose whole window lies before ``end``: what the
    reference had shown by then.

    (Recomputing partial slices at every window doubled the replay's cost; a day in
    progress is still seen through the reference accounts' own prefix features.)
    """
    last = end.timestamp() // seconds  # windows before this index are complete
    return table.filter(pa.array(indices < last))


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
