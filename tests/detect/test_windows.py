"""Per-window scoring: an account's most unusual window, calibrated per account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard.config import DetectSettings, Settings
from distillguard.detect.knn import KNNNoveltyScorer
from distillguard.detect.windows import WindowDetector
from distillguard.pipeline import scan
from distillguard.store import Store

T0 = datetime(2026, 2, 2, tzinfo=UTC)


def _windows(rows: list[tuple[str, int, int]]) -> pa.Table:
    """(account, day, exchanges) → window_features rows (the columns the scorer reads)."""
    return pa.table({
        "account_id": [f"{a}@{d}" for a, d, _ in rows],
        "n_exchanges": [n for _, _, n in rows],
        "first_seen": [T0 + timedelta(days=d) for _, d, _ in rows],
    })


def test_a_burst_day_flags_an_account_that_looks_normal_over_the_week() -> None:
    rng = np.random.default_rng(0)
    reference = _windows([(f"r{i}", d, int(rng.integers(5, 30))) for i in range(300) for d in range(7)])
    det = WindowDetector(KNNNoveltyScorer(k=2, features=("n_exchanges",)), target_fpr=0.01, min_exchanges=5)
    det.fit(reference)
    scanned = _windows([("steady", d, 20) for d in range(7)] + [("burst", 0, 10), ("burst", 1, 2000)])
    flags = det.flag(scanned)
    assert set(flags) == {"burst"}
    assert flags["burst"].startswith("window from 2026-02-03 00:00 UTC unlike any benign account's (2000 exchanges")


def test_scan_with_windows_on(small_traffic: Path, tmp_path: Path) -> None:
    from distillguard.sim import generate, load_scenario

    generate(load_scenario("demo").scaled(0.1).benign_only(), tmp_path / "ref", seed=77, fmt="jsonl")
    settings = Settings(detect=DetectSettings(window_hours=24))
    with Store.open(tmp_path / "s.duckdb") as store:
        result = scan(small_traffic, tmp_path / "out", store=store, settings=settings, reference_dir=tmp_path / "ref")
        ids = store.query("SELECT account_id FROM window_features").column(0).to_pylist()
    assert ids and all("@" in i for i in ids)
    assert result.flagged >= 1
