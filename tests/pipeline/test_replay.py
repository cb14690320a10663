"""Streaming replay: windows in time order, first-flag times, time-to-detect in bench."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from distillguard.bench import evaluate
from distillguard.detect.base import Slices
from distillguard.errors import InputError
from distillguard.pipeline import scan
from distillguard.replay import _complete_before, _window_indices, replay
from distillguard.sim import generate, load_scenario
from distillguard.store import Store


@pytest.fixture(scope="module")
def replayed(small_traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("replay")
    generate(load_scenario("demo").scaled(0.1).benign_only(), work / "ref", seed=55, fmt="jsonl")
    with Store.open(work / "r.duckdb") as store:
        result = replay(small_traffic, work / "out", store=store, window=timedelta(hours=12),
                        reference_dir=work / "ref")
    assert result.windows == 15  # seven days and a little, in 12-hour windows
    with Store.open(work / "s.duckdb") as store:
        scan(small_traffic, work / "scan", store=store, reference_dir=work / "ref")
    return work / "out", work / "scan"


def test_windows_are_cumulative_and_first_flags_consistent(replayed: tuple[Path, Path]) -> None:
    out, _ = replayed
    states = pq.read_table(out / "replay.parquet").to_pylist()
    last: dict[str, int] = {}
    first_seen_flag: dict[str, object] = {}
    for row in states:
        assert row["n_exchanges"] >= last.get(row["account_id"], 0)
        last[row["account_id"]] = row["n_exchanges"]
        if row["flagged"]:
            first_seen_flag.setdefault(row["account_id"], row["window_end"])
    first = {r["account_id"]: r for r in pq.read_table(out / "first_flagged.parquet").to_pylist()}
    assert set(first) == set(last)
    for account, r in first.items():
        assert r["first_flagged_at"] == first_seen_flag.get(account)


def test_bench_reports_time_to_detect(small_traffic: Path, replayed: tuple[Path, Path]) -> None:
    out, scan_out = replayed
    metrics = evaluate(small_traffic, scan_out, out)
    replay_metrics = metrics["replay"]
    assert set(replay_metrics["campaigns"]) == {"camp-agentic", "camp-capability", "camp-traces"}
    assert replay_metrics["detected"] >= 2
    assert 0.0 <= replay_metrics["median_share_before_flag"] <= 1.0


def test_replay_rejects_a_bad_window(small_traffic: Path, tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="window must be positive"):
        replay(small_traffic, tmp_path / "o", store=store, window=timedelta(0))


def test_replay_without_reference_refits_on_the_prefix(small_traffic: Path, tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        result = replay(small_traffic, tmp_path / "o", store=store, window=timedelta(days=2))
    states = pq.read_table(tmp_path / "o" / "replay.parquet")
    assert result.windows == 4
    assert pc.max(states.column("window_end")).as_py() is not None


def test_the_last_window_is_the_scan(replayed: tuple[Path, Path]) -> None:
    """Replay and scan run the same stages: once every exchange is in, they decide alike."""
    out, scan_out = replayed
    assert _last_window(out / "replay.parquet") == _accounts(scan_out / "accounts.parquet")


def test_without_reference_the_last_window_is_the_scan_too(small_traffic: Path, tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.duckdb") as store:
        replay(small_traffic, tmp_path / "replay", store=store, window=timedelta(days=3))
    with Store.open(tmp_path / "s.duckdb") as store:
        scan(small_traffic, tmp_path / "scan", store=store)
    assert _last_window(tmp_path / "replay" / "replay.parquet") == _accounts(tmp_path / "scan" / "accounts.parquet")


def _last_window(path: Path) -> dict[str, tuple[float, bool]]:
    states = pq.read_table(path)
    last = states.filter(pc.equal(states.column("window_end"), pc.max(states.column("window_end"))))
    return _accounts_of(last)


def _accounts(path: Path) -> dict[str, tuple[float, bool]]:
    return _accounts_of(pq.read_table(path))


def _accounts_of(table: pa.Table) -> dict[str, tuple[float, bool]]:
    return {r["account_id"]: (r["score"], r["flagged"]) for r in table.to_pylist()}


def test_replay_uses_only_reference_slices_completed_before_the_window() -> None:
    day = 86400
    slices = Slices(pa.table({"account_id": ["a@10", "a@11", "b@11", "b@12"], "n_exchanges": [20, 30, 40, 50]}), day)
    end = datetime.fromtimestamp(12 * day + 3600, UTC)  # day 12 in progress
    kept = _complete_before(slices.features, _window_indices(slices.features), slices.seconds, end)
    assert kept.column("account_id").to_pylist() == ["a@10", "a@11", "b@11"]


def test_replay_summarizes_time_to_flag(replayed: tuple[Path, Path]) -> None:
    """replay.json says how soon flagged accounts were flagged (#21), from first_flagged.parquet's rows."""
    import json

    out, _ = replayed
    first = pq.read_table(out / "first_flagged.parquet").to_pylist()
    flagged = [r for r in first if r["first_flagged_at"] is not None]
    assert flagged and all(r["first_seen"] <= r["first_flagged_at"] for r in flagged)
    timing = json.loads((out / "replay.json").read_text())["time_to_flag"]
    assert timing["accounts"] == len(flagged)
    assert 0 <= timing["median_hours"] <= timing["p90_hours"] <= 24 * 8
    assert 1 <= timing["median_exchanges"] <= timing["p90_exchanges"]
