"""Every ``--json`` option's output parses as JSON, empty cases included (#21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from distillguard import cli

runner = CliRunner()
GOOD = {"exchange_id": "e1", "timestamp": "2026-02-01T00:00:00Z", "account_id": "a",
        "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}
TESTED = {"quarantine", "bench"}  # the commands below test; a new --json option needs a test here


def _json_commands(group: Any, prefix: str = "") -> set[str]:
    """Commands (``lab run``, ...) with a ``--json`` option, walking the click tree typer builds."""
    found = set()
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer may bring its own click: no isinstance)
            found |= _json_commands(command, f"{prefix}{name} ")
        elif any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.add(f"{prefix}{name}")
    return found


def test_every_json_option_is_tested() -> None:
    commands = _json_commands(typer.main.get_command(cli.app))
    assert "watermark keygen" not in commands and "quarantine" in commands  # the walk reaches commands
    assert commands == TESTED


def _ingest(tmp_path: Path, text: str) -> str:
    traffic = tmp_path / "traffic"
    traffic.mkdir()
    (traffic / "exchanges.jsonl").write_text(text)
    db = str(tmp_path / "s.duckdb")
    assert runner.invoke(cli.app, ["ingest", str(traffic), "--db", db]).exit_code == 0
    return db


def test_quarantine_json_lines_when_nothing_is_quarantined(tmp_path: Path) -> None:
    """JSON Lines: no row, no output at all (what ``jq -s .`` reads as [], and --help says so)."""
    db = _ingest(tmp_path, json.dumps(GOOD) + "\n")
    result = runner.invoke(cli.app, ["quarantine", "--db", db, "--json"])
    assert result.exit_code == 0 and result.stdout == ""
    assert [json.loads(line) for line in result.stdout.splitlines()] == []
    assert "no output at all when nothing is quarantined" in " ".join(
        runner.invoke(cli.app, ["quarantine", "--help"]).output.split())


def test_quarantine_json_lines_parse(tmp_path: Path) -> None:
    db = _ingest(tmp_path, json.dumps(GOOD) + "\n{oops\nnot json either\n")
    result = runner.invoke(cli.app, ["quarantine", "--db", db, "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["file"]).name, r["line"]) for r in rows] == [("exchanges.jsonl", 2), ("exchanges.jsonl", 3)]


def test_quarantine_table_folds_a_long_path_rather_than_cutting_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / "a-rather-long-directory-name" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    db = _ingest(deep, json.dumps(GOOD) + "\n{oops\n")
    monkeypatch.setattr(cli, "out", Console(width=60, force_terminal=False))
    result = runner.invoke(cli.app, ["quarantine", "--db", db])
    assert result.exit_code == 0 and "…" not in result.stdout
    cells = "".join(line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│"))
    assert str(deep / "traffic" / "exchanges.jsonl") in cells


def test_bench_json_parses_when_there_is_nothing_to_find(tmp_path: Path) -> None:
    """A benign-only period: no attacker, no campaign; metrics that cannot be computed are null, not NaN."""
    traffic, scan_out = tmp_path / "traffic", tmp_path / "scan"
    traffic.mkdir()
    scan_out.mkdir()
    (traffic / "labels.jsonl").write_bytes(b"\n".join(orjson.dumps(
        {"account_id": a, "is_attack": False, "campaign_id": None, "style": "chat", "population": "chat"})
        for a in ("a", "b")))
    pq.write_table(pa.table({"account_id": ["a", "b"], "score": [0.1, 0.2], "flagged": [False, False],
                             "cluster_id": [None, None], "n_exchanges": [3, 4]}), scan_out / "accounts.parquet")
    (scan_out / "campaigns.json").write_text("[]")
    result = runner.invoke(cli.app, ["bench", str(traffic), str(scan_out), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["attack_accounts"] == 0 and metrics["roc_auc"] is None and metrics["reported_campaigns"] == 0
