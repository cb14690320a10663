"""API keys → accounts, stored hashed: ``distillguard keys add|list|revoke``.

A key is shown once, when it is created; the store keeps its SHA-256 only (an
API key is a random 256-bit secret, so a fast hash is enough: there is nothing
to brute-force). The store is one SQLite file, created 0600 (an existing
store readable by others is made 0600 and a warning logged), safe for the CLI and several
gateway replicas on one host; the gateway keeps an in-memory copy and re-reads
the file when it changes, so a revoked key stops working without a restart.

>>> import tempfile, pathlib
>>> keys = KeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.db")
>>> secret, record = keys.add("acct-1", organization="org-a")
>>> keys.lookup(secret).account_id, keys.lookup("dg-wrong")
('acct-1', None)
>>> _ = keys.revoke(record.key_id); keys.lookup(secret) is None
True
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from distillguard.errors import ConfigError, InputError

log = logging.getLogger(__name__)
PREFIX = "dg-"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str  # public id (safe to log): "key-" + first 12 hex of the hash
    account_id: str
    organization: str | None
    created_at: str
    revoked_at: str | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """The hashed key table in ``path`` (created on first use)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._cache: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _private(self.path)
            with self._connect() as con:
                con.execute("""CREATE TABLE IF NOT EXISTS api_keys (
                    hash TEXT PRIMARY KEY, key_id TEXT UNIQUE NOT NULL, account_id TEXT NOT NULL,
                    organization TEXT, created_at TEXT NOT NULL, revoked_at TEXT)""")
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open the key store {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def add(self, account_id: str, organization: str | None = None) -> tuple[str, KeyRecord]:
        """Create a key for ``account_id``; return (the secret, shown only now, and its record)."""
        if not account_id.strip():
            raise InputError("account id must not be empty")
        secret = PREFIX + secrets.token_urlsafe(32)
        h = digest(secret)
        record = KeyRecord(f"key-{h[:12]}", account_id, organization, datetime.now(UTC).isoformat(), None)
        with self._connect() as con:
            con.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                        (h, record.key_id, account_id, organization, record.created_at))
        return secret, record

    def revoke(self, key_id: str) -> KeyRecord:
        with self._connect() as con:
            cur = con.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                              (datetime.now(UTC).isoformat(), key_id))
            if cur.rowcount == 0:
                known = con.execute("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
                raise InputError(f"key {key_id} is already revoked" if known else f"no key with id {key_id}")
        return next(r for r in self.list() if r.key_id == key_id)

    def list(self) -> list[KeyRecord]:
        with self._connect() as con:
            rows = con.execute("SELECT key_id, account_id, organization, created_at, revoked_at FROM api_keys "
                               "ORDER BY created_at, key_id").fetchall()
        return [KeyRecord(*r) for r in rows]

    def lookup(self, secret: str) -> KeyRecord | None:
        """The active key record for ``secret``, or None (unknown or revoked)."""
        self._refresh()
        record = self._cache.get(digest(secret))
        return record if record is not None and record.revoked_at is None else None

    def _refresh(self) -> None:
        """Re-read the table when the file changed (a revoke from the CLI takes effect at once)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with self._connect() as con:
            rows = con.execute("SELECT hash, key_id, account_id, organization, created_at, revoked_at "
                               "FROM api_keys").fetchall()
        self._cache = {r[0]: KeyRecord(*r[1:]) for r in rows}
        self._stamp = stamp


def _private(path: Path) -> None:
    """Create ``path`` 0600 if missing; make an existing one 0600 if others can read it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("key store %s was readable by others (mode %o); made 0600", path, mode)
        path.chmod(0o600)
