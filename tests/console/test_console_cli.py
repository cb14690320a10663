"""``distillguard console``'s command line: adding users, and refusing to start without a way to log in."""

from __future__ import annotations

from pathlib import Path

from tests.console.conftest import Scanned
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.console.auth import load_users

runner = CliRunner()


def test_add_user_stores_a_scrypt_hash_and_never_the_password(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    r = runner.invoke(app, ["console", "--users", str(users), "--add-user", "dana", "--role", "read-only"],
                      input="pa55-word\npa55-word\n")
    assert r.exit_code == 0, r.output
    assert "pa55-word" not in users.read_text()
    dana = load_users(users)["dana"]
    assert dana.role == "read-only" and dana.check("pa55-word") and not dana.can_decide
    r = runner.invoke(app, ["console", "--users", str(users), "--add-user", "eve", "--role", "admin"],
                      input="x\nx\n")
    assert r.exit_code == 1 and "role must be one of" in r.output


def test_the_console_needs_users_or_an_identity_header(scanned: Scanned, tmp_path: Path) -> None:
    r = runner.invoke(app, ["console", "--db", str(scanned.db), "--scan-out", str(scanned.out), "--state",
                            str(tmp_path / "state")])
    assert r.exit_code == 1 and "--users FILE" in r.output
    r = runner.invoke(app, ["console", "--db", str(tmp_path / "none.duckdb"), "--scan-out", str(scanned.out),
                            "--users", str(tmp_path / "u.txt")])
    assert r.exit_code == 1 and "no store at" in r.output
