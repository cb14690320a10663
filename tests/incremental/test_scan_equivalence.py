"""An incremental scan decides exactly as a full scan over the same window does."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.incremental.conftest import landing, outputs

from distillguard.incremental.scan import incremental_scan
from distillguard.incremental.window import Window
from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store


def _full(traffic: Path, out: Path, db: Path, window: Window | None = None) -> None:
    with Store.open(db) as store:
        scan(traffic, out, store=store, window=window)


def test_day_by_day_equals_one_full_scan(daily_traffic: Path, tmp_path: Path) -> None:
    """Days 1-4, then days 5-8 added: the second incremental scan's outputs are the full scan's of days 1-8."""
    zone = landing(daily_traffic, tmp_path / "zone", days=4)
    with Store.open(tmp_path / "inc.duckdb") as store:
        first = incremental_scan(zone, tmp_path / "inc-1", store=store)
        landing(daily_traffic, zone, days=8)
        second = incremental_scan(zone, tmp_path / "inc-2", store=store)
    assert first.ingest.files == 6 and second.ingest.files == 4  # 4 days + accounts + events; then 4 new days
    assert first.ingest.exchanges_added > 0 and second.ingest.exchanges_added > 0
    _full(daily_traffic, tmp_path / "full", tmp_path / "full.duckdb")
    got, want = outputs(tmp_path / "inc-2"), outputs(tmp_path / "full")
    assert got["accounts"].equals(want["accounts"])
    assert got["campaigns"] == want["campaigns"] and want["campaigns"]
    assert got["policy"] == want["policy"]
    assert got["summary"] == want["summary"]


def test_with_a_reference_too(daily_traffic: Path, tmp_path: Path) -> None:
    """The reference is vetted as in a full scan, and its evidence values are scaled to the window's accounts."""
    reference = tmp_path / "last-week"
    generate(load_scenario("demo").scaled(0.05).benign_only(), reference, seed=55, fmt="jsonl")
    zone = landing(daily_traffic, tmp_path / "zone", days=3)
    with Store.open(tmp_path / "inc.duckdb") as store:
        incremental_scan(zone, tmp_path / "inc-1", store=store, reference_dir=reference)
        landing(daily_traffic, zone, days=8)
        incremental_scan(zone, tmp_path / "inc-2", store=store, reference_dir=reference)
    with Store.open(tmp_path / "full.duckdb") as store:
        scan(daily_traffic, tmp_path / "full", store=store, reference_dir=reference)
    got, want = outputs(tmp_path / "inc-2"), outputs(tmp_path / "full")
    assert want["summary"]["reference_accounts_kept"] > 0
    assert got == want


def test_a_sliding_window_equals_a_full_scan_of_that_window(daily_traffic: Path, tmp_path: Path) -> None:
    """With --window 3d, days drop out as new ones arrive; accounts seen only before the window are gone."""
    window = Window.parse("3d")
    zone = landing(daily_traffic, tmp_path / "zone", days=5)
    with Store.open(tmp_path / "inc.duckdb") as store:
        incremental_scan(zone, tmp_path / "inc-1", store=store, window=window)
        landing(daily_traffic, zone, days=8)
        incremental_scan(zone, tmp_path / "inc-2", store=store, window=window)
    _full(daily_traffic, tmp_path / "full", tmp_path / "full.duckdb", window=window)
    got, want = outputs(tmp_path / "inc-2"), outputs(tmp_path / "full")
    assert got == want
    assert want["summary"]["first_seen"] >= "2026-02-07"  # the last three of the eight days
    with Store.open(tmp_path / "whole.duckdb") as store:
        whole = scan(daily_traffic, tmp_path / "whole", store=store)
    assert got["accounts"].num_rows < whole.accounts


def test_nothing_new_reads_nothing_and_decides_the_same(daily_traffic: Path, tmp_path: Path) -> None:
    with Store.open(tmp_path / "inc.duckdb") as store:
        incremental_scan(daily_traffic, tmp_path / "a", store=store)
        again = incremental_scan(daily_traffic, tmp_path / "b", store=store)
        exchanges = store.count("exchanges")
    assert again.ingest.files == 0 and again.ingest.exchanges_read == 0
    assert exchanges == outputs(tmp_path / "a")["summary"]["exchanges"]
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


@pytest.mark.parametrize("bad", ["5h", "0d", "a month"])
def test_a_window_is_whole_days(bad: str) -> None:
    from distillguard.errors import InputError

    with pytest.raises(InputError, match="window"):
        Window.parse(bad)
