"""The audit table, what decisions write, and the users file, without a server."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from distillguard.console.auth import hash_password, parse_users, verify_password
from distillguard.console.decisions import Decision, DecisionLog
from distillguard.console.effects import cleared, effective_policy, labels
from distillguard.errors import ConfigError, InputError
from distillguard.records import PolicyRecord

NOW = datetime(2026, 3, 1, tzinfo=UTC)
BASE = [PolicyRecord(subject="cluster:cluster-0001", action="challenge", reason="campaign-0001",
                     expires_at=datetime(2026, 3, 8, tzinfo=UTC), members=["a", "b", "c"]),
        PolicyRecord(subject="account:z", action="throttle", reason="flagged", expires_at=None)]


def _campaign(log: DecisionLog, kind: str, **kw: object) -> Decision:
    return log.add(Decision.new("alice", kind, subject_kind="campaign", subject_id="campaign-0001", scan="s1",
                                cluster_id="cluster-0001", members=["a", "b", "c"], now=NOW, **kw))  # type: ignore[arg-type]


def test_the_audit_table_is_append_only(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    d = _campaign(log, "escalate", note="to legal")
    assert d.id == 1 and log.all()[0].note == "to legal" and log.all()[0].user == "alice"
    con = sqlite3.connect(tmp_path / "d.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE decisions SET note = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM decisions")


def test_undo_reverts_to_the_decision_before_and_only_a_standing_one(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    first = _campaign(log, "escalate")
    second = _campaign(log, "confirm", enforcement="block", expires_days=7)
    assert log.current()[("campaign", "campaign-0001")].id == second.id
    log.add(Decision.new("bob", "undo", subject_kind="campaign", subject_id="campaign-0001", scan="s1",
                             undoes=second.id))
    assert log.current()[("campaign", "campaign-0001")].id == first.id
    with pytest.raises(InputError, match="not a standing decision"):
        log.add(Decision.new("bob", "undo", subject_kind="campaign", subject_id="campaign-0001", scan="s1",
                             undoes=second.id))
    with pytest.raises(InputError, match="not a standing decision"):  # another subject's decision
        log.add(Decision.new("bob", "undo", subject_kind="account", subject_id="a", scan="s1", undoes=first.id))


def test_a_confirmed_campaign_replaces_the_scans_record_under_a_subject_of_its_own(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    d = _campaign(log, "confirm", enforcement="withhold_reasoning", expires_days=7, note="traces")
    records = {r.subject: r for r in effective_policy(BASE, log.current(), scan="s1")}
    assert set(records) == {f"cluster:campaign-0001.d{d.id}", "account:z"}
    mine = records[f"cluster:campaign-0001.d{d.id}"]
    assert (mine.action, mine.transforms, mine.members) == ("monitor", ["withhold_reasoning"], ["a", "b", "c"])
    assert mine.expires_at == datetime(2026, 3, 8, tzinfo=UTC)
    # On a later scan the decision stands, and that scan's own cluster-0001 (other accounts maybe) is kept too.
    later = {r.subject for r in effective_policy(BASE, log.current(), scan="s2")}
    assert later == {f"cluster:campaign-0001.d{d.id}", "cluster:cluster-0001", "account:z"}


def test_a_dismissed_account_leaves_every_record_and_joins_the_cleared_and_labels(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    _campaign(log, "confirm", enforcement="block", expires_days=7)
    log.add(Decision.new("alice", "dismiss", subject_kind="account", subject_id="b", scan="s1", note="partner eval"))
    log.add(Decision.new("alice", "dismiss", subject_kind="account", subject_id="z", scan="s1", note="batch jobs"))
    policy = effective_policy(BASE, log.current(), scan="s1")
    assert [r.members for r in policy] == [["a", "c"]] and policy[0].action == "block"
    assert sorted(cleared(log.current())) == ["b", "z"]
    rows = {r["account_id"]: r for r in labels(log.current())}
    assert rows["a"]["is_attack"] and rows["a"]["campaign_id"] == "campaign-0001"
    assert rows["b"]["is_attack"] is False and rows["b"]["population"] == "cleared"


def test_a_dismissed_campaign_clears_its_members_unless_one_is_confirmed_itself(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.sqlite")
    _campaign(log, "dismiss", note="a classroom")
    log.add(Decision.new("alice", "confirm", subject_kind="account", subject_id="c", scan="s1", enforcement="throttle",
                         expires_days=3))
    assert sorted(cleared(log.current())) == ["a", "b"]
    subjects = [(r.subject, r.action) for r in effective_policy(BASE, log.current(), scan="s1")]
    assert subjects == [("account:z", "throttle"), ("account:c", "throttle")]


def test_passwords_are_scrypt_hashes_and_bad_users_files_are_named() -> None:
    stored = hash_password("s3cret")
    assert "s3cret" not in stored and verify_password("s3cret", stored) and not verify_password("other", stored)
    assert not verify_password("s3cret", "plain")
    with pytest.raises(ConfigError, match=r"users.txt:2: expected"):
        parse_users(["# header", "alice analyst hunter2"], "users.txt")
    with pytest.raises(ConfigError, match="role must be one of"):
        parse_users([f"alice admin {stored}"], "users.txt")
