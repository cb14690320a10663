"""An incremental scan: ingest what is new, update the per-day aggregates, decide over the window.

``scan DIR --out OUT --incremental [--window 30d]`` against the same store, hour after hour:

1. the ledger (``ledger``) picks the files not read before; only those are ingested;
2. the exchanges without signals are enriched (``fresh``), and the (account, day) pairs they
   fall in are aggregated again from their rows (``daily.refresh``);
3. features are merged from the aggregates for the accounts that changed (new traffic, a day
   that left the window; every account when sign-up facts, events or the window changed),
   and kept for the others (``merge``);
4. links, scores, campaigns and outputs are computed over the whole window, as a full scan
   does, but from the account-level aggregates (``links``), never from the exchanges.

The outputs equal a full scan over the same window (``scan DIR --window 30d``):
``tests/incremental/test_scan_equivalence.py`` compares them. Per-exchange work (ingest,
enrichment, per-day aggregation) follows the new traffic; linking and scoring follow the
number of accounts and their per-day aggregates.

>>> import tempfile
>>> from distillguard.sim import generate, load_scenario
>>> tmp = Path(tempfile.mkdtemp())
>>> _ = generate(load_scenario("demo").scaled(0.05), tmp / "traffic", seed=1)
>>> with Store.open(tmp / "s.duckdb") as store:
...     first = incremental_scan(tmp / "traffic", tmp / "out", store=store)
...     again = incremental_scan(tmp / "traffic", tmp / "out", store=store)
>>> first.ingest.exchanges_added > 0, again.ingest.files, again.accounts == first.accounts
(True, 0, True)
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import orjson

from distillguard.config import Settings
from distillguard.feedback import cleared_accounts, record_cleared
from distillguard.incremental import daily
from distillguard.incremental.fresh import TOUCHED, enrich_new, touch_all
from distillguard.incremental.ledger import Ledger, partition_date
from distillguard.incremental.links import window_link_inputs
from distillguard.incremental.merge import merged_features
from distillguard.incremental.window import Window, last_day
from distillguard.ingest import IngestReport, ingest_traffic_dir
from distillguard.pipeline import Scan
from distillguard.stages import Progress, ScanResult, rounded, run_window_features, timed
from distillguard.store import Store

__all__ = ["incremental_scan", "update_features"]

log = logging.getLogger(__name__)
_STATE = "incremental_state"
"""Ledger mark: what the aggregates and ``account_features`` were last built for (JSON)."""


def incremental_scan(
    traffic_dir: Path, out_dir: Path, *, store: Store, settings: Settings | None = None, window: Window | None = None,
    progress: Progress | None = None, reference_dir: Path | None = None, benign_file: Path | None = None,
) -> ScanResult:
    """Scan what is new in ``traffic_dir`` into ``store``'s aggregates and write ``out_dir`` over ``window``.

    Arguments as for ``pipeline.scan``; the engine is DuckDB (the aggregates live in the store).
    """
    window = window or Window()
    with Scan(store, settings=settings, engine="duckdb", progress=progress) as run:
        if benign_file is not None:
            record_cleared(store, benign_file)
        cleared = cleared_accounts(store)
        reference, kept = run.load_reference(reference_dir, cleared=cleared)
        report, first_day = _update(run, Path(traffic_dir), window)
        clusters = run.link(inputs=window_link_inputs(store, run.engine, first_day=first_day, reference_accounts=kept))
        scoring = run.score(store.read("account_features"), clusters, reference=reference, cleared=cleared)
        return run.publish(out_dir, report=report, scoring=scoring, clusters=clusters, traffic_dir=traffic_dir,
                           reference_dir=reference_dir, cleared=cleared,
                           since=window.since(last_day(store)))


def _update(run: Scan, traffic_dir: Path, window: Window) -> tuple[IngestReport, int]:
    """Ingest the new files, enrich and aggregate what they added, update the features; returns the
    ingest report and the window's first day."""
    store = run.store
    ledger = Ledger(store)
    daily.create_tables(store)
    state = _state(ledger)
    consistent = state.get("signals") == store.count("signals") and state.get("exchanges") == store.count("exchanges")
    read: dict[str, list[Path]] = {}

    def select(files: dict[str, list[Path]]) -> dict[str, list[Path]]:
        read.update(ledger.unseen(files, not_before=_not_before(files, window)))
        return read

    progress = run.progress
    with timed("incremental: ingest"):
        report = ingest_traffic_dir(traffic_dir, store, settings=run.settings.ingest, select=select,
                                    progress=(lambda n: progress("ingest", n, None)) if progress else None)
    with timed("incremental: enrich"):
        fresh = enrich_new(store, files=read.get("exchanges", []) if consistent else None, progress=run.progress)
    with timed("incremental: aggregate"):
        if not consistent:  # a store scanned otherwise before (or never): aggregate it anew
            daily.clear(store)
            touch_all(store)
        daily.refresh(store, TOUCHED)
        if read.get("events") or not consistent:
            daily.refresh_release(store)
    first_day = window.first_day(last_day(store))
    everything = (not consistent or bool(read.get("accounts")) or bool(read.get("events"))
                  or state.get("window") != window.days)
    with timed("incremental: features"):
        changed = update_features(store, first_day, previous=state.get("first_day"), everything=everything)
        _window_features(run, window)
    log.info("incremental scan: %d new exchanges in %d (account, day) pairs, features of %d accounts rebuilt",
             fresh.exchanges, fresh.pairs, changed)
    ledger.mark(_STATE, orjson.dumps({"signals": store.count("signals"), "exchanges": store.count("exchanges"),
                                      "window": window.days, "first_day": first_day}).decode())
    ledger.record()
    return report, first_day


def update_features(store: Store, first_day: int, *, previous: int | None = None, everything: bool = False) -> int:
    """Rebuild ``account_features`` rows of the accounts that changed since the aggregates were last merged:
    those in ``TOUCHED``, those with a day that left the window (it began on ``previous`` and now on
    ``first_day``), every account when ``everything``. Returns how many accounts were rebuilt."""
    con = store.con
    if everything:
        con.execute("CREATE OR REPLACE TEMP TABLE _changed AS SELECT DISTINCT account_id FROM agg_activity "
                    "UNION SELECT account_id FROM account_features")
    else:
        left = "" if previous is None or previous >= first_day else (
            f" UNION SELECT DISTINCT account_id FROM agg_activity WHERE day >= {previous} AND day < {first_day}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _changed AS SELECT DISTINCT account_id FROM {TOUCHED}{left}")
    features = rounded(merged_features(store, first_day, "_changed"))
    row = con.execute("SELECT count(*) FROM _changed").fetchone()
    with store.transaction():
        con.execute("DELETE FROM account_features WHERE account_id IN (SELECT account_id FROM _changed)")
        store.append("account_features", features)
        # Kept in account order, as a full scan writes it (scoring reads it in table order).
        con.execute("CREATE OR REPLACE TEMP TABLE _sorted AS SELECT * FROM account_features ORDER BY account_id")
        con.execute("DELETE FROM account_features")
        con.execute("INSERT INTO account_features SELECT * FROM _sorted")
        con.execute("DROP TABLE _sorted")
    con.execute("DROP TABLE _changed")
    return int(row[0]) if row else 0


def _window_features(run: Scan, window: Window) -> None:
    """Per-window features (``detect.window_hours``, off by default) from the window's exchanges: not
    incremental, a full pass over the window's signals."""
    if run.settings.detect.window_hours > 0:
        log.warning("detect.window_hours is on: window features are computed from every exchange in the "
                    "window (not incrementally)")
    run_window_features(run.store, run.engine, settings=run.settings, since=window.since(last_day(run.store)))


def _state(ledger: Ledger) -> dict[str, int | None]:
    text = ledger.marked(_STATE)
    return {} if text is None else dict(orjson.loads(text))


def _not_before(files: dict[str, list[Path]], window: Window) -> date | None:
    """Partitions (``date=YYYY-MM-DD``) older than the window, counted back from the newest one, are not read
    (one day's margin: a partition's day is the writer's, an exchange's day its own time's)."""
    if window.days is None:
        return None
    days = [d for paths in files.values() for p in paths if (d := partition_date(p)) is not None]
    return max(days) - timedelta(days=window.days) if days else None

