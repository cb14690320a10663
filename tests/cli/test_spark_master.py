"""``scan --master``: a malformed or unreachable Spark master is one clear line, before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from distillguard.cli import app

runner = CliRunner()


@pytest.mark.parametrize(("master", "says"), [
    ("spark:/host:7077", "bad Spark master 'spark:/host:7077'"),
    ("spark://host", "bad Spark master"),
    ("local[two]", "bad Spark master"),
])
def test_a_malformed_master_is_one_line(master: str, says: str, tmp_path: Path) -> None:
    result = _scan(tmp_path, "--engine", "spark", "--master", master)
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one line, wrapped at most once


def test_an_unreachable_master_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _scan(tmp_path, "--engine", "spark", "--master", f"spark://127.0.0.1:{port}")
    assert result.exit_code == 1 and f"cannot reach the Spark master spark://127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output and "java" not in result.output.lower()


def test_master_needs_the_spark_engine(tmp_path: Path) -> None:
    result = _scan(tmp_path, "--master", "local[2]")
    assert result.exit_code == 1 and "--engine spark" in result.output


def _scan(tmp_path: Path, *options: str) -> Result:
    (tmp_path / "t").mkdir()
    return runner.invoke(app, ["scan", str(tmp_path / "t"), "--out", str(tmp_path / "o"),
                               "--db", str(tmp_path / "s.duckdb"), *options])
