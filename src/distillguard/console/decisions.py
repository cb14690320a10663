"""The analysts' decisions: an append-only audit table (SQLite) of who decided what, when and why.

A decision is ``confirm`` (with an enforcement and an expiry), ``dismiss`` (benign, with a note),
``escalate``, or ``undo`` of an earlier decision. Rows are never changed or deleted: undoing is one
more row, and a subject's current state is its latest decision not undone.

>>> import tempfile, pathlib
>>> log = DecisionLog(pathlib.Path(tempfile.mkdtemp()) / "decisions.sqlite")
>>> first = log.add(Decision.new("alice", "confirm", subject_kind="account", subject_id="acct-1",
...                              enforcement="block", expires_days=7, note="harvests maths", scan="s1"))
>>> _ = log.add(Decision.new("bob", "undo", subject_kind="account", subject_id="acct-1", undoes=first.id, scan="s1"))
>>> log.current().get(("account", "acct-1")) is None, len(log.all())
(True, 2)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from distillguard.errors import InputError

KINDS = ("confirm", "dismiss", "escalate", "undo")
SUBJECTS = ("campaign", "account")
ENFORCEMENTS = ("block", "challenge", "throttle", "withhold_reasoning", "mark")
"""What a confirmation asks of the gateway: an action, or a transform (withhold reasoning), or a mark in the log."""
MAX_EXPIRY_DAYS = 365

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,            -- UTC, ISO 8601
    user TEXT NOT NULL,
    subject_kind TEXT NOT NULL,  -- campaign | account
    subject_id TEXT NOT NULL,
    kind TEXT NOT NULL,          -- confirm | dismiss | escalate | undo
    enforcement TEXT,            -- confirm: block | challenge | throttle | withhold_reasoning | mark
    expires_at TEXT,
    note TEXT NOT NULL DEFAULT '',
    scan TEXT NOT NULL,          -- the scan output it was made on (console.index.scan_key)
    cluster_id TEXT,             -- campaign decisions: the cluster and members as the analyst saw them
    members TEXT,                -- JSON list
    undoes INTEGER REFERENCES decisions(id)
);
CREATE TRIGGER IF NOT EXISTS decisions_append_only_u BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_append_only_d BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""


@dataclass(frozen=True)
class Decision:
    """One row of the audit table."""

    user: str
    subject_kind: str
    subject_id: str
    kind: str
    at: datetime
    scan: str
    enforcement: str | None = None
    expires_at: datetime | None = None
    note: str = ""
    cluster_id: str | None = None
    members: tuple[str, ...] = ()
    undoes: int | None = None
    id: int = 0

    @classmethod
    def new(cls, user: str, kind: str, *, subject_kind: str, subject_id: str, scan: str,
            enforcement: str | None = None, expires_days: float | None = None, note: str = "",
            cluster_id: str | None = None, members: tuple[str, ...] | list[str] = (), undoes: int | None = None,
            now: datetime | None = None) -> Decision:
        """A checked decision made now; bad values are an ``InputError`` naming the field.

        >>> Decision.new("a", "confirm", subject_kind="account", subject_id="x", scan="s", enforcement="tarpit",
        ...              expires_days=1)
        Traceback (most recent call last):
        ...
        distillguard.errors.InputError: enforcement: must be one of block, challenge, throttle, withhold_reasoning, mark
        """
        at = (now or datetime.now(UTC)).replace(microsecond=0)
        if subject_kind not in SUBJECTS:
            raise InputError(f"subject: must be one of {', '.join(SUBJECTS)}")
        if kind not in KINDS:
            raise InputError(f"decision: must be one of {', '.join(KINDS)}")
        if not subject_id or len(subject_id) > 200:
            raise InputError("subject id: missing or longer than 200 characters")
        if len(note) > 2000:
            raise InputError("note: at most 2000 characters")
        expires_at = None
        if kind == "confirm":
            if enforcement not in ENFORCEMENTS:
                raise InputError(f"enforcement: must be one of {', '.join(ENFORCEMENTS)}")
            if expires_days is None or not 0 < expires_days <= MAX_EXPIRY_DAYS:
                raise InputError(f"expiry: a number of days above 0 and at most {MAX_EXPIRY_DAYS}")
            expires_at = at + timedelta(days=expires_days)
        else:
            enforcement = None
        if kind == "dismiss" and not note.strip():
            raise InputError("note: say why the subject is benign")
        if kind == "undo" and undoes is None:
            raise InputError("undo: which decision to undo")
        return cls(user, subject_kind, subject_id, kind, at, scan, enforcement, expires_at, note.strip(),
                   cluster_id, tuple(members), undoes)

    @property
    def subject(self) -> tuple[str, str]:
        return (self.subject_kind, self.subject_id)

    @property
    def status(self) -> str:
        """The queue's word for the subject while this decision stands."""
        return {"confirm": "confirmed", "dismiss": "dismissed", "escalate": "escalated"}.get(self.kind, "open")


class DecisionLog:
    """The audit table in a SQLite file (safe across threads; writers wait for each other)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.executescript(_SCHEMA)

    def add(self, d: Decision) -> Decision:
        """Append ``d``; an undo must name a standing decision of the same subject."""
        with self._lock:
            if d.kind == "undo":
                standing = {x.id: x for x in _active(self._rows())}
                target = standing.get(d.undoes or 0)
                if target is None or target.subject != d.subject:
                    raise InputError(f"undo: decision {d.undoes} is not a standing decision on "
                                     f"{d.subject_kind} {d.subject_id}")
            cur = self._con.execute(
                "INSERT INTO decisions (at, user, subject_kind, subject_id, kind, enforcement, expires_at, note, scan,"
                " cluster_id, members, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.at.isoformat(), d.user, d.subject_kind, d.subject_id, d.kind, d.enforcement,
                 d.expires_at.isoformat() if d.expires_at else None, d.note, d.scan, d.cluster_id,
                 json.dumps(list(d.members)) if d.members else None, d.undoes))
            return replace(d, id=int(cur.lastrowid or 0))

    def all(self) -> list[Decision]:
        """Every row, oldest first."""
        with self._lock:
            return self._rows()

    def of(self, subject_kind: str, subject_id: str) -> list[Decision]:
        """The subject's rows, newest first (its history on the page)."""
        return [d for d in reversed(self.all()) if d.subject == (subject_kind, subject_id)]

    def current(self) -> dict[tuple[str, str], Decision]:
        """Each subject's standing decision (latest not undone); subjects with none are absent."""
        out: dict[tuple[str, str], Decision] = {}
        for d in _active(self.all()):
            out[d.subject] = d
        return out

    def _rows(self) -> list[Decision]:
        rows = self._con.execute(
            "SELECT id, at, user, subject_kind, subject_id, kind, enforcement, expires_at, note, scan, cluster_id,"
            " members, undoes FROM decisions ORDER BY id").fetchall()
        return [Decision(id=r[0], at=datetime.fromisoformat(r[1]), user=r[2], subject_kind=r[3], subject_id=r[4],
                         kind=r[5], enforcement=r[6], expires_at=datetime.fromisoformat(r[7]) if r[7] else None,
                         note=r[8], scan=r[9], cluster_id=r[10], members=tuple(json.loads(r[11] or "[]")),
                         undoes=r[12]) for r in rows]

    def close(self) -> None:
        self._con.close()


def _active(rows: list[Decision]) -> list[Decision]:
    """Decisions (not undos) that no undo has reverted, oldest first."""
    undone = {d.undoes for d in rows if d.kind == "undo"}
    return [d for d in rows if d.kind != "undo" and d.id not in undone]
