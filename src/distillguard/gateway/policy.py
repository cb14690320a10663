"""The policy table from ``scan`` (``OUT/policy.json``), looked up per request and hot-reloaded.

A record's ``subject`` is ``account:ID`` or ``cluster:ID``; a cluster's action
applies to each of its ``members``. An account gets the strictest of its own
action and its cluster's; expired records are ignored (records already expired
when a file loads are reported in the log, and ``/metrics`` counts expired
records). The file is re-read
when it changes (checked at most every ``check_every`` seconds), atomically:
a request sees the old table or the new one, never half of each, and a
malformed file keeps the last good table (and says so in the log). Each record
is checked against its record (``records.PolicyRecord``: members a list of strings,
``expires_at`` with a time zone, ...); a bad record is reported (the log and
``Policy.errors``) and skipped, and the rest of the table applies. A record
may also name response ``transforms`` (``withhold_reasoning``, ``summarize_reasoning``) and
``logits_processors`` the gateway sends upstream for its subject (a watermark
or an antidistillation sampling defence, on upstreams that support them).

>>> import json, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
>>> _ = path.write_text(json.dumps([{"subject": "cluster:c1", "action": "challenge", "reason": "campaign-0001",
...     "expires_at": "2099-01-01T00:00:00+00:00", "members": ["a", "b"]}]))
>>> Policy(path).decide("b").action, Policy(path).decide("z").action
('challenge', 'allow')
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from distillguard.errors import ConfigError
from distillguard.records import PolicyRecord
from distillguard.schema import ACTIONS

log = logging.getLogger(__name__)
STRICTNESS = {a: i for i, a in enumerate(ACTIONS)}  # allow < monitor < throttle < challenge < block


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str | None = None
    subject: str | None = None  # the record that decided (account:ID or cluster:ID)
    expires_at: datetime | None = None
    transforms: tuple[str, ...] = ()  # response transforms, e.g. withhold_reasoning
    logits_processors: tuple[dict[str, Any], ...] = ()  # sent upstream: watermark / sampling defence


ALLOW = Decision("allow")


@dataclass(frozen=True)
class _Table:
    accounts: dict[str, Decision]
    clusters: dict[str, Decision]
    member_of: dict[str, str]
    errors: tuple[str, ...] = ()  # records reported and skipped
    records: int = 0  # valid records
    expiries: tuple[datetime, ...] = ()  # each valid record's expiry, sorted (records without one: none)

    def expired(self, now: datetime) -> int:
        """Valid records whose expiry is not after ``now`` (``decide`` ignores them)."""
        return bisect.bisect_right(self.expiries, now)


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors())


def parse_policy(records: Any, source: str) -> _Table:
    """Validate ``policy.json`` content: a bad record is reported (``_Table.errors``, the log) and skipped; a
    file that is not a list, or has records and not one valid, is a ``ConfigError`` (the last good table stays)."""
    if not isinstance(records, list):
        raise ConfigError(f"{source}: expected a list of policy records")
    accounts: dict[str, Decision] = {}
    clusters: dict[str, Decision] = {}
    member_of: dict[str, str] = {}
    errors: list[str] = []
    expiries: list[datetime] = []
    for i, raw in enumerate(records):
        try:
            r = PolicyRecord.model_validate(raw)
        except ValidationError as exc:
            errors.append(f"{source}: record {i} skipped: {_problem(exc)}")
            log.error("%s", errors[-1])
            continue
        if r.expires_at is not None:
            expiries.append(r.expires_at)
        kind, _, ident = r.subject.partition(":")
        processors = tuple(p.model_dump() for p in r.logits_processors or [])
        decision = Decision(r.action, r.reason, r.subject, r.expires_at, tuple(r.transforms or []), processors)
        if kind == "account":
            accounts[ident] = _stricter(accounts.get(ident), decision)
        else:
            clusters[ident] = _stricter(clusters.get(ident), decision)
            for member in r.members or []:
                member_of[member] = ident
    if records and len(errors) == len(records):  # nothing usable: a broken file, not an empty decision
        raise ConfigError(f"{source}: no valid policy record ({errors[0]})")
    return _Table(accounts, clusters, member_of, tuple(errors), len(records) - len(errors), tuple(sorted(expiries)))


def _stricter(a: Decision | None, b: Decision) -> Decision:
    """The stricter decision; any record beats the default (an explicit ``allow`` is a decision too)."""
    return b if a is None or a.subject is None or STRICTNESS[b.action] > STRICTNESS[a.action] else a


class Policy:
    """Per-account decisions from a policy file (or none: everyone is allowed)."""

    def __init__(self, path: Path | str | None, check_every: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.check_every = check_every
        self._table = _Table({}, {}, {})
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self.loads = 0
        if self.path is not None:
            if not self.path.is_file():
                raise ConfigError(f"policy file not found: {self.path}")
            self._reload(strict=True)

    def _reload(self, strict: bool = False) -> None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            table = parse_policy(orjson.loads(self.path.read_bytes()), str(self.path))
        except (OSError, orjson.JSONDecodeError, ConfigError) as exc:
            if strict:
                raise ConfigError(f"cannot load policy {self.path}: {exc}") from exc
            log.error("policy %s not reloaded, keeping the previous table: %s", self.path, exc)
            return
        self._table, self._stamp = table, stamp  # one assignment: readers see old or new
        self.loads += 1
        log.info("policy %s loaded: %d accounts, %d clusters, %d bad records skipped", self.path,
                 len(table.accounts), len(table.clusters), len(table.errors))
        expired = table.expired(datetime.now(UTC))
        if expired:  # a stale file enforces nothing: say so rather than serve everyone as allowed
            log.warning("policy %s: %d of %d records had already expired when loaded (latest expiry %s) and are "
                        "ignored; run scan again for current decisions", self.path, expired, table.records,
                        table.expiries[expired - 1].isoformat())

    @property
    def version(self) -> tuple[int, int] | None:
        """The loaded file's (modification time in ns, size): the same for every worker that loaded it."""
        return self._stamp

    def decide(self, account_id: str, cluster_id: str | None = None, now: datetime | None = None) -> Decision:
        """The strictest decision unexpired at ``now`` for the account or its cluster (``allow`` if none)."""
        tick = time.monotonic()
        if self.path is not None and tick - self._checked >= self.check_every:
            with self._lock:
                if tick - self._checked >= self.check_every:
                    self._checked = tick
                    self._reload()
        table = self._table
        cluster = cluster_id or table.member_of.get(account_id)
        best = ALLOW
        transforms: set[str] = set()
        processors: list[dict[str, Any]] = []
        wall = now or datetime.now(UTC)
        for d in (table.accounts.get(account_id), table.clusters.get(cluster) if cluster else None):
            if d is not None and (d.expires_at is None or d.expires_at > wall):
                best = _stricter(best, d)
                transforms.update(d.transforms)  # transforms and processors of every record that applies
                processors += [p for p in d.logits_processors if p not in processors]
        if transforms != set(best.transforms) or tuple(processors) != best.logits_processors:
            best = Decision(best.action, best.reason, best.subject, best.expires_at, tuple(sorted(transforms)),
                            tuple(processors))
        return best

    @property
    def records(self) -> int:
        """Valid records in the current table."""
        return self._table.records

    def expired(self, now: datetime | None = None) -> int:
        """Records of the current table expired at ``now`` (the wall clock by default)."""
        return self._table.expired(now or datetime.now(UTC))

    @property
    def errors(self) -> tuple[str, ...]:
        """Records of the current table's file that were reported and skipped."""
        return self._table.errors

    def cluster_of(self, account_id: str) -> str | None:
        return self._table.member_of.get(account_id)
