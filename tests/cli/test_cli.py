"""The command line: help with examples, one-line errors, quarantine listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillguard.cli import app

runner = CliRunner()
COMMANDS = ["ingest", "scan", "report", "quarantine", "simulate", "bench", "demo", "replay", "export-stix", "gateway",
            "import-stix"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: distillguard" in result.output


def test_missing_directory_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
                                 "--db", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1
    assert "traffic directory not found" in result.output
    assert "Traceback" not in result.output


def test_unknown_engine(tmp_path: Path, small_traffic: Path) -> None:
    result = runner.invoke(app, ["scan", str(small_traffic), "--out", str(tmp_path / "o"),
                                 "--db", str(tmp_path / "s.duckdb"), "--engine", "oracle"])
    assert result.exit_code == 1 and "unknown engine 'oracle'" in result.output


def test_missing_benign_file_is_one_line(tmp_path: Path, small_traffic: Path) -> None:
    result = runner.invoke(app, ["scan", str(small_traffic), "--out", str(tmp_path / "o"),
                                 "--db", str(tmp_path / "s.duckdb"), "--benign", str(tmp_path / "cleared.txt")])
    assert result.exit_code == 1 and "benign accounts file not found" in result.output
    assert "Traceback" not in result.output


def test_ingest_then_quarantine_json(tmp_path: Path) -> None:
    traffic = tmp_path / "t"
    traffic.mkdir()
    good = {"timestamp": "2026-02-01T12:00:00Z", "account_id": "a",
            "request": {"messages": [{"role": "user", "content": "hi"}]}}
    (traffic / "exchanges.jsonl").write_text(json.dumps(good) + "\n{oops\n" + json.dumps(good) + "\n")
    db = str(tmp_path / "s.duckdb")
    result = runner.invoke(app, ["ingest", str(traffic), "--db", db])
    assert result.exit_code == 0, result.output
    assert "1 malformed rows quarantined" in result.output
    listed = runner.invoke(app, ["quarantine", "--db", db, "--json"])
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert rows == [{"file": str(traffic / "exchanges.jsonl"), "line": 2, "reason": rows[0]["reason"]}]
    assert rows[0]["reason"].startswith("invalid JSON")


def test_quarantine_without_store_is_clear(tmp_path: Path) -> None:
    result = runner.invoke(app, ["quarantine", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1 and "no store at" in result.output


def test_simulate_scan_report_bench(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('name = "tiny"\ndays = 2\n[[groups]]\nname = "chat"\nstyle = "chat"\naccounts = 20\n'
                        'exchanges_per_account = 20\n[[groups]]\nname = "c1"\nstyle = "reasoning-traces"\n'
                        'accounts = 4\nexchanges_per_account = 300\nis_attack = true\ntiming = "round-robin"\n'
                        'network = "proxy-pool"\naccounts_per_payment = 2\n')
    traffic, out, db = tmp_path / "t", tmp_path / "o", tmp_path / "s.duckdb"
    r = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--out", str(traffic), "--seed", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["scan", str(traffic), "--out", str(out), "--db", str(db)])
    assert r.exit_code == 0, r.output
    (out / "report.html").unlink()
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0 and (out / "report.html").is_file()
    r = runner.invoke(app, ["bench", str(traffic), str(out), "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["accounts"] == 24 and metrics["attack_accounts"] == 4
    r = runner.invoke(app, ["export-stix", str(out), "--out", str(tmp_path / "b.json"), "--tlp", "green"])
    assert r.exit_code == 0 and "STIX objects written" in r.output, r.output
    r = runner.invoke(app, ["import-stix", str(tmp_path / "b.json"), "--db", str(tmp_path / "partner.duckdb")])
    assert r.exit_code == 0 and "indicators read" in r.output, r.output
    r = runner.invoke(app, ["export-stix", str(out), "--out", str(tmp_path / "b.json"), "--tlp", "purple"])
    assert r.exit_code == 1 and "unknown TLP level 'purple'" in r.output


def test_report_on_wrong_directory(tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 1 and "not a scan output directory" in r.output


def test_replay_bad_window_is_one_line(small_traffic: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["replay", str(small_traffic), "--out", str(tmp_path / "o"), "--window", "soon",
                            "--db", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 1 and "is not a duration like 30m, 1h or 1d" in r.output


def test_error_messages_are_printed_as_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from distillguard._cli_support import errors
    from distillguard.errors import ConfigError

    with pytest.raises(typer.Exit), errors():
        raise ConfigError("needs the lab extra: pip install 'distillguard[lab]'")
    assert "pip install 'distillguard[lab]'" in capsys.readouterr().err  # [lab] is not eaten as a style tag
