"""The console's settings and state: the scan it shows, the decision log, and the files decisions write.

``Console.scan()`` notices a new scan output (``OUT`` rewritten by the next ``scan``), indexes it once and
re-applies the standing decisions to its policy, so the gateway never loads a policy without them for longer
than it takes the console to notice (the next page view, or ``refresh_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from distillguard.console.account_data import AccountData
from distillguard.console.auth import ROLES, Sessions, User, load_users
from distillguard.console.decisions import Decision, DecisionLog
from distillguard.console.effects import write_all
from distillguard.console.index import Index, Retention, scan_key
from distillguard.console.scan_data import ScanData
from distillguard.errors import ConfigError, DistillGuardError, InputError

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # how soon to look again at a scan output that could not be read


@dataclass(frozen=True)
class ConsoleSettings:
    """Where the console reads and writes, and who may use it.

    ``state``: the console's own folder (decisions, index, and the files it writes); by default beside the
    store, ``<db>.console/``. ``policy``: the file the gateway loads (default ``STATE/policy.json``; not
    ``OUT/policy.json``, which the next scan overwrites). ``users``: the users file; ``trust_header``: a
    reverse proxy's identity header (e.g. ``X-Remote-User``), whose users are ``header_role`` unless the
    users file names them.
    """

    db: Path
    scan_out: Path
    state: Path | None = None
    policy: Path | None = None
    users: Path | None = None
    trust_header: str | None = None
    header_role: str = "read-only"
    host: str = "127.0.0.1"
    port: int = 8765
    retention: Retention = field(default_factory=Retention)
    page_size: int = 50

    @property
    def state_dir(self) -> Path:
        return self.state or self.db.with_suffix(".console")

    @property
    def policy_path(self) -> Path:
        return self.policy or self.state_dir / "policy.json"

    @property
    def cleared_path(self) -> Path:
        """One cleared account a line: ``distillguard scan --benign`` reads it."""
        return self.state_dir / "cleared.txt"

    @property
    def labels_path(self) -> Path:
        """Analyst labels, one exchange-log ``labels`` row a line."""
        return self.state_dir / "labels.jsonl"


class Console:
    """Everything a request needs, shared by the server's threads."""

    def __init__(self, settings: ConsoleSettings) -> None:
        if settings.users is None and settings.trust_header is None:
            raise ConfigError("give --users FILE (add users with --add-user) or --trust-header HEADER")
        if settings.header_role not in ROLES:
            raise ConfigError(f"--header-role must be one of {', '.join(ROLES)}, got {settings.header_role!r}")
        if not settings.db.is_file():
            raise ConfigError(f"no store at {settings.db} (run `distillguard scan` first)")
        self.settings = settings
        self.users: dict[str, User] = load_users(settings.users) if settings.users else {}
        self.sessions = Sessions()
        self.log = DecisionLog(settings.state_dir / "decisions.sqlite")
        self.index = Index(settings.state_dir / "index")
        self.accounts = AccountData(settings.db, settings.retention)
        self._lock = threading.RLock()
        self._scan: ScanData | None = None
        self._retry_at = 0.0
        self.scan()

    def scan(self) -> ScanData:
        """The current scan output, reloaded (and the policy rewritten) when a new scan replaced it."""
        with self._lock:
            current = self._scan
            try:
                changed = current is None or scan_key(self.settings.scan_out) != current.key
            except InputError:  # a scan is rewriting the folder this moment
                changed = False
            if changed and current is not None and time.monotonic() < self._retry_at:
                return current
            if changed:
                try:
                    fresh = ScanData(self.settings.scan_out, self.settings.db, self.index, self.settings.retention)
                except (DistillGuardError, OSError, duckdb.Error, pa.ArrowException) as exc:
                    if current is None:
                        raise
                    # A scan still writing its outputs or holding the store: show the last one, try again soon.
                    log.warning("keeping scan %s: the new scan output cannot be read yet (%s)", current.key, exc)
                    self._retry_at = time.monotonic() + RETRY_SECONDS
                    return current
                self._scan = fresh
                fresh.pictures.warm()  # so that even the first view of a large campaign is quick
                if current is not None:
                    current.close()
                self.apply()
                log.info("console shows scan %s (%s)", fresh.key, self.settings.scan_out)
            assert self._scan is not None
            return self._scan

    def apply(self) -> None:
        """Write the policy, cleared accounts and labels for the standing decisions."""
        with self._lock:
            scan = self._scan
            assert scan is not None
            write_all(policy_path=self.settings.policy_path, cleared_path=self.settings.cleared_path,
                      labels_path=self.settings.labels_path, base=scan.base_policy, current=self.log.current(),
                      scan=scan.key)

    def decide(self, d: Decision) -> Decision:
        """Record ``d`` in the audit table, then apply every standing decision."""
        with self._lock:
            stored = self.log.add(d)
            self.apply()
        log.info("decision %d by %s: %s %s %s", stored.id, stored.user, stored.kind, stored.subject_kind,
                 stored.subject_id)
        return stored

    def user_for_header(self, name: str) -> User:
        """The user a reverse proxy named: as the users file says, else with ``header_role``."""
        return self.users.get(name) or User(name, self.settings.header_role)

    def close(self) -> None:
        with self._lock:
            if self._scan is not None:
                self._scan.close()
            self.log.close()
