"""The scan pipeline: ingest → enrich → features → link → score → decide → publish.

One object, ``Scan``, holds what every path shares (settings, store, engine) and runs the
stages (``stages``) with keyword-only methods: ``scan`` runs them once over a traffic
directory, ``replay`` once per window over the exchanges before it (``Scan.window``); the
two cannot drift apart because they are the same calls. A reference period is prepared by
a second ``Scan`` on its own store and vetted before it is used (``scoring``).

>>> import tempfile
>>> from distillguard.sim import generate, load_scenario
>>> tmp = Path(tempfile.mkdtemp())
>>> _ = generate(load_scenario("demo").scaled(0.05), tmp / "traffic", seed=1)
>>> with Store.open(tmp / "s.duckdb") as store, Scan(store) as run:
...     result = run.scan(tmp / "traffic", tmp / "out")
>>> result.accounts > 0, (tmp / "out" / "report.html").exists()
(True, True)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import pyarrow as pa

from distillguard.config import Settings
from distillguard.decide import find_campaigns
from distillguard.detect.base import Slices
from distillguard.engine import Engine, SparkOptions, make_engine
from distillguard.feedback import cleared_accounts, record_cleared
from distillguard.incremental.reference import reference_store
from distillguard.incremental.window import Window, last_day
from distillguard.ingest import IngestReport, ingest_traffic_dir
from distillguard.link import LinkInputs, evidence_values, reference_values
from distillguard.link.communities import components
from distillguard.link.evidence import HOSTING_ASNS
from distillguard.schema import empty
from distillguard.scoring import Reference, Scoring, score_accounts, vet_reference
from distillguard.stages import (
    PARALLEL_ENRICH_ROWS,
    Progress,
    ScanResult,
    link_inputs,
    publish,
    reference_slices,
    rounded,
    run_enrich,
    run_features,
    run_link,
    run_score,
    run_window_features,
    timed,
)
from distillguard.store import Store

__all__ = ["PARALLEL_ENRICH_ROWS", "Prepared", "Progress", "Scan", "ScanResult", "prepare", "publish", "rounded",
           "run_enrich", "run_features", "run_link", "run_score", "scan", "score_accounts"]


class Prepared(NamedTuple):
    """What ``Scan.prepare`` made: the ingest report, account features, clusters (when linked) and
    slices (when asked for)."""

    report: IngestReport
    features: pa.Table
    clusters: pa.Table | None
    slices: Slices | None


class Scan:
    """One store scanned stage by stage; the engine is opened on first use and closed with the scan.

    ``label`` names the stages in the log (``reference: link took 2.0 s``); ``spark``: where the
    Spark engine runs (its master and warehouse; ``engine.SparkOptions``).
    """

    def __init__(
        self, store: Store, *, settings: Settings | None = None, engine: str = "duckdb",
        progress: Progress | None = None, label: str = "ingest", spark: SparkOptions | None = None,
    ) -> None:
        self.store, self.settings, self.engine_name = store, settings or Settings(), engine
        self.progress, self.label, self.spark = progress, label, spark
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.engine_name, self.store, spark=self.spark)
        return self._engine

    def close(self) -> None:
        """Close the engine (a Spark session, a DuckDB view set); the store stays open."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # Stages, in order. Each writes its tables to the store.

    def ingest(self, traffic_dir: Path) -> IngestReport:
        """Read ``traffic_dir`` into the store (``exchanges``, ``accounts``, ``events``, ``quarantine``)."""
        progress = self.progress
        with timed(f"{self.label}: ingest"):
            return ingest_traffic_dir(traffic_dir, self.store, settings=self.settings.ingest,
                                      progress=(lambda n: progress(self.label, n, None)) if progress else None)

    def enrich(self) -> int:
        """Per-exchange signals (``signals``); returns the row count."""
        with timed(f"{self.label}: enrich"):
            return run_enrich(self.store, self.engine, progress=self.progress)

    def features(self, *, before: datetime | None = None, since: datetime | None = None) -> pa.Table:
        """Account features (and ``window_features``) from the exchanges before ``before`` (all: None),
        from ``since`` on (all: None)."""
        with timed(f"{self.label}: features"):
            return run_features(self.store, self.engine, settings=self.settings, before=before, since=since)

    def slices(self) -> Slices | None:
        """Each account's features per reference slice (a reference's daily slices; ``stages``)."""
        return reference_slices(self.store, self.engine, self.settings)

    def link(
        self, *, before: datetime | None = None, since: datetime | None = None, reference_accounts: int = 0,
        inputs: LinkInputs | None = None, edges: pa.Table | None = None,
    ) -> pa.Table:
        """Link and cluster accounts; ``reference_accounts``: how many the vetted reference kept;
        ``inputs``: the tables to link from (default: the store's, between ``since`` and ``before``),
        ``edges``: their edges, computed already."""
        with timed(f"{self.label}: link"):
            return run_link(self.store, self.engine, settings=self.settings, reference_accounts=reference_accounts,
                            before=before, since=since, inputs=inputs, edges=edges)

    def score(
        self, features: pa.Table, clusters: pa.Table, *, reference: Reference | None = None,
        cleared: frozenset[str] = frozenset(),
    ) -> Scoring:
        """Score against the vetted ``reference`` (none: the population vetted against itself)."""
        with timed("score"):
            return run_score(self.store, features, settings=self.settings, reference=reference, clusters=clusters,
                             cleared=cleared)

    # Whole runs.

    def prepare(
        self, traffic_dir: Path, *, link: bool = True, slices: bool = False, reference_accounts: int = 0,
        window: Window | None = None,
    ) -> Prepared:
        """Every stage before scoring: ingest, enrich, features (and slices), link; over the last days of
        ``window`` (default: all)."""
        report = self.ingest(traffic_dir)
        self.enrich()
        since = (window or Window()).since(last_day(self.store))
        features = self.features(since=since)
        cut = self.slices() if slices else None
        clusters = self.link(reference_accounts=reference_accounts, since=since) if link else None
        return Prepared(report, features, clusters, cut)

    def scan(
        self, traffic_dir: Path, out_dir: Path, *, reference_dir: Path | None = None, benign_file: Path | None = None,
        window: Window | None = None,
    ) -> ScanResult:
        """Ingest ``traffic_dir``, run every stage, write ``out_dir`` (see ``scan``)."""
        if benign_file is not None:
            record_cleared(self.store, benign_file)
        cleared = cleared_accounts(self.store)
        reference, kept = self.load_reference(reference_dir, cleared=cleared)
        report, features, clusters, _ = self.prepare(traffic_dir, reference_accounts=kept, window=window)
        assert clusters is not None  # link=True
        scoring = self.score(features, clusters, reference=reference, cleared=cleared)
        return self.publish(out_dir, report=report, scoring=scoring, clusters=clusters, traffic_dir=traffic_dir,
                            reference_dir=reference_dir, cleared=cleared,
                            since=(window or Window()).since(last_day(self.store)))

    def publish(
        self, out_dir: Path, *, report: IngestReport, scoring: Scoring, clusters: pa.Table, traffic_dir: Path,
        reference_dir: Path | None, cleared: frozenset[str], since: datetime | None = None,
    ) -> ScanResult:
        """Decide and write ``out_dir`` (``stages.publish``)."""
        with timed("publish"):
            return publish(self.store, out_dir, settings=self.settings, report=report, scoring=scoring,
                           clusters=clusters, traffic_dir=str(traffic_dir), engine=self.engine,
                           reference_dir=str(reference_dir) if reference_dir else None, cleared=cleared,
                           since=since)

    def load_reference(
        self, reference_dir: Path | None, *, cleared: frozenset[str] = frozenset()
    ) -> tuple[Reference | None, int]:
        """Prepare and vet ``reference_dir`` in its own store (``<db>.reference.duckdb``); store its
        evidence values (``reference_values``: the base rate of link rarity) here. Returns the
        reference (None without one) and how many accounts its vetting kept."""
        if reference_dir is None:
            self.store.replace("reference_values", empty("reference_values"))
            return None, 0
        with reference_store(self.store.path.with_suffix(".reference.duckdb"), reference_dir,
                             self.settings) as (ref_store, ready), \
                Scan(ref_store, settings=self.settings, engine=self.engine_name, progress=self.progress,
                     label="reference", spark=self.spark.nested("reference") if self.spark else None) as ref:
            reference, base_rates = ref.vetted_reference(reference_dir, cleared=cleared, ready=ready)
        self.store.replace("reference_values", base_rates)
        assert reference.set_aside is not None  # vetted
        return reference, reference.features.num_rows - len(reference.set_aside.reasons)

    def vetted_reference(
        self, traffic_dir: Path, *, cleared: frozenset[str] = frozenset(), ready: bool = False,
    ) -> tuple[Reference, pa.Table]:
        """This store as a reference period: prepared (already, when ``ready``: its stored tables are
        used), vetted, and its evidence values counted over the accounts the vetting kept."""
        prepared = self.prepare(traffic_dir, slices=True) if not ready else Prepared(
            IngestReport(0, 0, 0, 0, 0, 0, 0), self.store.read("account_features"),
            self.store.read("account_clusters"), self.slices())
        assert prepared.clusters is not None  # link=True
        with timed(f"{self.label}: vetting"):
            reference = Reference(prepared.features, prepared.clusters, prepared.slices,
                                  self.store.read("window_features"),
                                  groups=components(self.store.read("account_links")))
            aside = vet_reference(reference, self.settings, cleared)
            link = self.settings.link
            holders = self.engine.execute(evidence_values(link_inputs(self.store, self.engine), link.min_template_share,
                                                          HOSTING_ASNS + tuple(link.hosting_asns)))
            kept = {a for a in prepared.features.column("account_id").to_pylist() if a not in aside.reasons}
        return replace(reference, set_aside=aside), reference_values(holders, kept)

    def window(
        self, end: datetime, *, reference: Reference | None = None, reference_accounts: int = 0,
        cleared: frozenset[str] = frozenset(), features: pa.Table | None = None, inputs: LinkInputs | None = None,
        edges: pa.Table | None = None,
    ) -> pa.Table:
        """Each account's state from the exchanges before ``end``, decided as ``scan`` decides:
        account_id, n_exchanges, score, flagged (campaign members flagged). Stages write the
        store's tables for this prefix, so a window is as a scan that stopped at ``end``.

        ``features``, ``inputs``, ``edges``: the prefix's account features, link inputs and edges,
        already made (replay's per-day aggregates, ``incremental.prefix``); by default from the exchanges."""
        if features is None:
            features = self.features(before=end)
        else:
            run_window_features(self.store, self.engine, settings=self.settings, before=end)
        clusters = self.link(before=end, reference_accounts=reference_accounts, inputs=inputs, edges=edges)
        scoring = self.score(features, clusters, reference=reference, cleared=cleared)
        _, _, view = find_campaigns(scoring.scores, clusters, features=scoring.features, det=scoring.det,
                                    settings=self.settings, cleared=cleared,
                                    edges=self.store.read("account_links"))
        return view.select(["account_id", "n_exchanges", "score", "flagged"])


def scan(
    traffic_dir: Path, out_dir: Path, *, store: Store, settings: Settings | None = None, engine_name: str = "duckdb",
    progress: Progress | None = None, reference_dir: Path | None = None, benign_file: Path | None = None,
    window: Window | None = None, spark: SparkOptions | None = None,
) -> ScanResult:
    """Ingest ``traffic_dir`` into ``store``, run every stage, write ``out_dir``.

    ``reference_dir``: an earlier period of traffic, as it was (attackers and all); it is
    processed the same way in its own store (``<db>.reference.duckdb``), vetted (its campaign
    members and flagged accounts set aside, ``scoring``) and the detector is fitted and
    calibrated on the accounts it kept. ``benign_file``: accounts an analyst cleared
    (``feedback``), remembered in ``store`` for later scans. ``window``: only the last days of the
    traffic count (``incremental.window``); the reference is taken whole. ``spark``: where the Spark
    engine runs (``engine_name`` "spark"; default: local mode, its warehouse beside ``store``).
    """
    with Scan(store, settings=settings, engine=engine_name, progress=progress, spark=spark) as run:
        return run.scan(traffic_dir, out_dir, reference_dir=reference_dir, benign_file=benign_file, window=window)


def prepare(
    traffic_dir: Path, store: Store, *, settings: Settings | None = None, engine_name: str = "duckdb",
    progress: Progress | None = None, label: str = "ingest", link: bool = True, slices: bool = False,
    reference_accounts: int = 0,
) -> Prepared:
    """Ingest, enrich, featurize (and link) ``traffic_dir`` in ``store``: every stage before scoring.

    ``slices``: also the accounts' slices (``reference_slices``; for a benign reference).
    """
    with Scan(store, settings=settings, engine=engine_name, progress=progress, label=label) as run:
        return run.prepare(traffic_dir, link=link, slices=slices, reference_accounts=reference_accounts)
