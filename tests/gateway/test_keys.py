"""API keys: hashed at rest, revocation seen by a running store, CLI."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.errors import InputError
from distillguard.gateway.keys import KeyStore


def test_secrets_are_never_stored(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db")
    secret, record = keys.add("acct-1")
    raw = (tmp_path / "k.db").read_bytes()
    assert secret.encode() not in raw and record.key_id.encode() in raw
    with sqlite3.connect(tmp_path / "k.db") as con:
        assert con.execute("SELECT count(*) FROM api_keys WHERE hash LIKE 'dg-%'").fetchone()[0] == 0


def test_a_revoke_from_another_process_takes_effect_without_restart(tmp_path: Path) -> None:
    gateway_view = KeyStore(tmp_path / "k.db")
    secret, record = KeyStore(tmp_path / "k.db").add("acct-1", "org")
    assert gateway_view.lookup(secret) is not None  # sees keys added after it opened
    KeyStore(tmp_path / "k.db").revoke(record.key_id)
    assert gateway_view.lookup(secret) is None
    with pytest.raises(InputError, match="already revoked"):
        gateway_view.revoke(record.key_id)
    with pytest.raises(InputError, match="no key with id key-nope"):
        gateway_view.revoke("key-nope")


def test_keys_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "k.db")
    r = runner.invoke(app, ["keys", "add", "--account", "acct-9", "--organization", "org-1", "--keys", db])
    assert r.exit_code == 0, r.output
    secret = re.search(r"dg-[\w-]+", r.output)
    key_id = re.search(r"key-[0-9a-f]{12}", r.output)
    assert secret and key_id
    listed = runner.invoke(app, ["keys", "list", "--keys", db])
    assert "acct-9" in listed.output and "active" in listed.output and secret.group(0) not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key_id.group(0), "--keys", db]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list", "--keys", db]).output
    again = runner.invoke(app, ["keys", "revoke", key_id.group(0), "--keys", db])
    assert again.exit_code == 1 and "already revoked" in again.output
    for sub in ("add", "list", "revoke"):
        assert "Example: distillguard keys" in runner.invoke(app, ["keys", sub, "--help"]).output
