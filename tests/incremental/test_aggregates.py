"""Features and links from the per-day aggregates equal those computed from the exchanges."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.config import Settings
from distillguard.engine import DuckDBEngine
from distillguard.features import account_features
from distillguard.incremental import daily
from distillguard.incremental.fresh import touch_all
from distillguard.incremental.links import window_link_inputs
from distillguard.incremental.merge import merged_features
from distillguard.incremental.window import ALL_DAYS
from distillguard.link import link_accounts
from distillguard.pipeline import Scan
from distillguard.schema import ACCOUNT_FEATURES
from distillguard.stages import link_inputs, rounded
from distillguard.store import Store


@pytest.fixture(scope="module")
def aggregated(small_traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The small traffic ingested, enriched and aggregated per (account, day)."""
    store = Store.open(tmp_path_factory.mktemp("agg") / "s.duckdb")
    with Scan(store) as run:
        run.ingest(small_traffic)
        run.enrich()
    daily.create_tables(store)
    touch_all(store)
    daily.refresh(store, "_touched")
    daily.refresh_release(store)
    return store


def test_merged_features_equal_the_full_computation(aggregated: Store) -> None:
    store = aggregated
    engine = DuckDBEngine(store)
    want = rounded(engine.execute(account_features(engine.table("signals"), engine.table("accounts"),
                                                   engine.table("events")))).cast(ACCOUNT_FEATURES)
    store.con.execute("CREATE OR REPLACE TEMP TABLE _all AS SELECT DISTINCT account_id FROM agg_activity")
    got = rounded(merged_features(store, ALL_DAYS, "_all")).cast(ACCOUNT_FEATURES)
    assert got.num_rows == want.num_rows > 0
    for name in want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


def test_a_day_aggregated_again_after_more_exchanges_arrive(aggregated: Store, tmp_path: Path) -> None:
    """Refreshing an (account, day) pair replaces its aggregates (no double counting)."""
    store = aggregated
    before = store.query("SELECT sum(n) AS n FROM agg_activity").column("n")[0].as_py()
    store.con.execute("CREATE OR REPLACE TEMP TABLE _some AS SELECT account_id, day FROM agg_activity LIMIT 5")
    assert daily.refresh(store, "_some") == 5
    assert store.query("SELECT sum(n) AS n FROM agg_activity").column("n")[0].as_py() == before == \
        store.count("signals")


def test_links_from_the_aggregates_equal_links_from_the_exchanges(aggregated: Store) -> None:
    store, settings = aggregated, Settings()
    engine = DuckDBEngine(store)
    want = link_accounts(engine.execute, link_inputs(store, engine), settings=settings.link)
    got = link_accounts(engine.execute, window_link_inputs(store, engine, first_day=ALL_DAYS), settings=settings.link)
    assert want.edges.num_rows > 0
    assert got.edges.equals(want.edges)
    assert got.clusters.equals(want.clusters)

