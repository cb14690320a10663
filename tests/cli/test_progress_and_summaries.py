"""The CLI's progress bars count each run against its own total, and replay's warnings and summary (#21)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from distillguard import _cli_support, cli
from distillguard.replay import _repeats_held_back


def test_a_stage_that_runs_twice_gets_a_bar_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scanning with a reference enriches the reference, then the traffic: each against its own total."""
    monkeypatch.setattr(_cli_support, "console", Console(file=io.StringIO(), force_terminal=False))
    with _cli_support.progress() as bars:
        bars("reference", 291_659, None)  # ingest: the row count is not known ahead
        for n in (100_000, 100_000, 91_659):
            bars("enrich", n, 291_659)
        bars("ingest", 321_800, None)
        bars("enrich", 50_000, 321_800)
        bars("enrich", 50_000, 321_800)
        rows = bars.rows()
        text = [_cli_support._Count().render(t).plain for t in bars.bars.tasks]
    assert rows == [("reference", 291_659, None), ("enrich", 291_659, 291_659), ("ingest", 321_800, None),
                    ("enrich", 100_000, 321_800)]
    assert text == ["291,659", "291,659/291,659", "321,800", "100,000/321,800"]  # no "n/?"


def test_a_warning_repeated_every_window_is_shown_once(caplog: pytest.LogCaptureFixture) -> None:
    source = logging.getLogger("distillguard.detect.calibrated")
    with caplog.at_level(logging.WARNING):
        with _repeats_held_back(source.name):
            for n in (40, 41, 42):
                source.warning("a reference of %d accounts can only certify ...", n)
            source.warning("another kind")
        source.warning("after the replay: %d", 1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a reference of 40 accounts can only certify ...", "another kind",
                        "2 more warning(s) like the above from distillguard.detect.calibrated held back "
                        "(the detector is refitted every window)", "after the replay: 1"]


def test_replay_prints_time_to_detect_per_labelled_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "out", Console(width=200, force_terminal=False))
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    ends = [t0 + timedelta(hours=h) for h in (1, 1, 1, 2, 2, 2)]
    pq.write_table(pa.table({"window_end": ends, "account_id": ["a", "b", "z"] * 2, "n_exchanges": [5, 5, 9, 50, 5, 9],
                             "flagged": [False, False, False, True, False, False]}), tmp_path / "replay.parquet")
    (tmp_path / "labels.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in [
        {"account_id": "a", "is_attack": True, "campaign_id": "camp-1"},
        {"account_id": "b", "is_attack": True, "campaign_id": "camp-2"},
        {"account_id": "z", "is_attack": False, "campaign_id": None}]))
    timing = {"accounts": 1, "median_hours": 2.0, "p90_hours": 2.0, "median_exchanges": 50.0, "p90_exchanges": 50.0}
    cli._time_to_detect(timing, tmp_path, tmp_path)
    text = capsys.readouterr().out
    assert "time to flag, from an account's first exchange: median 2.0 h (90% within 2.0 h)" in text
    assert "camp-1" in text and "1.0 h after its first window" in text and "100.0%" in text
    assert "camp-2" in text and "never" in text
