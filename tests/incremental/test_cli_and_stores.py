"""``scan --incremental`` on the command line, and on a store a full scan made first."""

from __future__ import annotations

from pathlib import Path

from tests.incremental.conftest import outputs
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.incremental.scan import incremental_scan
from distillguard.pipeline import scan
from distillguard.store import Store

runner = CliRunner()


def test_the_command_line(daily_traffic: Path, tmp_path: Path) -> None:
    args = ["scan", str(daily_traffic), "--out", str(tmp_path / "o"), "--db", str(tmp_path / "s.duckdb"),
            "--incremental", "--window", "72h"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "accounts scanned" in first.output
    with Store.open(tmp_path / "s.duckdb", read_only=True) as store:
        files = store.con.execute("SELECT count(*) FROM ingest_ledger WHERE kind = 'exchanges'").fetchone()
    assert files == (4,)  # the window's three days and one day's margin: older partitions are not read
    assert runner.invoke(app, args).exit_code == 0


def test_bad_options_are_one_line(daily_traffic: Path, tmp_path: Path) -> None:
    base = ["scan", str(daily_traffic), "--out", str(tmp_path / "o"), "--db", str(tmp_path / "s.duckdb")]
    spark = runner.invoke(app, [*base, "--incremental", "--engine", "spark"])
    assert spark.exit_code == 1 and "--engine duckdb" in spark.output
    window = runner.invoke(app, [*base, "--window", "36h"])
    assert window.exit_code == 1 and "not whole days" in window.output


def test_a_store_scanned_in_full_first_is_aggregated_anew(daily_traffic: Path, tmp_path: Path) -> None:
    """The aggregates are rebuilt when the store holds exchanges an incremental scan did not add."""
    with Store.open(tmp_path / "s.duckdb") as store:
        scan(daily_traffic, tmp_path / "full", store=store)
        again = incremental_scan(daily_traffic, tmp_path / "inc", store=store)
    assert again.ingest.exchanges_added == 0
    assert outputs(tmp_path / "inc") == outputs(tmp_path / "full")


def test_a_store_from_before_template_tail_scans_incrementally(daily_traffic: Path, tmp_path: Path) -> None:
    """A store whose signals and aggregates predate ``template_tail`` gains the column last and keeps scanning
    incrementally (rows are written by name, not by position)."""
    args = ["scan", str(daily_traffic), "--out", str(tmp_path / "o"), "--db", str(tmp_path / "s.duckdb"),
            "--incremental", "--window", "72h"]
    assert runner.invoke(app, args).exit_code == 0
    with Store.open(tmp_path / "s.duckdb") as store:  # as the release before template_tail left it
        for table in ("signals", "agg_templates"):
            store.con.execute(f"ALTER TABLE {table} DROP COLUMN template_tail")
    again = runner.invoke(app, [*args, "--window", "30d"])  # older partitions are read now, into the old layout
    assert again.exit_code == 0, again.output
    with Store.open(tmp_path / "s.duckdb", read_only=True) as store:
        tails = store.con.execute("SELECT count(template_tail), count(*) FROM agg_templates").fetchone()
        cols = [r[0] for r in store.con.execute("DESCRIBE agg_templates").fetchall()]
    assert cols[-1] == "template_tail" and tails is not None and 0 < tails[0] < tails[1]
