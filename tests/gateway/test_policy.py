"""Policy lookups: cluster members, strictest action, expiry, hot reload, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.policy import Policy

FUTURE, PAST = "2099-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00"


def _write(path: Path, records: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records))
    os.replace(tmp, path)  # how scan's output is best published: atomically


def test_strictest_unexpired_action_wins(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    _write(path, [
        {"subject": "cluster:c1", "action": "challenge", "reason": "campaign-0001", "expires_at": FUTURE,
         "members": ["a", "b"]},
        {"subject": "account:b", "action": "block", "reason": "card testing", "expires_at": FUTURE},
        {"subject": "account:a", "action": "monitor", "reason": "old", "expires_at": FUTURE},
        {"subject": "account:x", "action": "block", "reason": "expired", "expires_at": PAST},
    ])
    p = Policy(path)
    assert (p.decide("a").action, p.decide("a").subject) == ("challenge", "cluster:c1")
    assert p.decide("b").action == "block"
    assert p.decide("x").action == "allow"
    assert p.decide("new-member", cluster_id="c1").action == "challenge"  # linked later: cluster applies


def test_hot_reload_and_a_bad_file_keeps_the_last_good_table(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    _write(path, [{"subject": "account:a", "action": "throttle", "reason": "r", "expires_at": FUTURE}])
    p = Policy(path, check_every=0.0)
    assert p.decide("a").action == "throttle"
    _write(path, [{"subject": "account:a", "action": "block", "reason": "r2", "expires_at": FUTURE}])
    assert p.decide("a").action == "block" and p.loads == 2
    path.write_text("[{not json")
    assert p.decide("a").action == "block" and p.loads == 2


def test_bad_policy_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy file not found"):
        Policy(tmp_path / "none.json")
    path = tmp_path / "p.json"
    _write(path, [{"subject": "acct:a", "action": "block"}])
    with pytest.raises(ConfigError, match="record 0: subject must be 'account:ID' or 'cluster:ID'"):
        Policy(path)
    _write(path, [{"subject": "account:a", "action": "nuke"}])
    with pytest.raises(ConfigError, match="action must be one of allow, monitor"):
        Policy(path)


def test_scan_output_loads(tmp_path: Path, small_traffic: Path) -> None:
    from distillguard.pipeline import scan
    from distillguard.store import Store

    with Store.open(tmp_path / "s.duckdb") as store:
        result = scan(small_traffic, tmp_path / "out", store)
    from datetime import datetime

    p = Policy(tmp_path / "out" / "policy.json")
    as_of = datetime.fromisoformat(json.loads((tmp_path / "out" / "summary.json").read_text())["last_seen"])
    assert result.campaigns
    for c in result.campaigns:  # decisions expire a week after the last exchange scanned
        assert all(p.decide(a, now=as_of).action == "challenge" for a in c["account_ids"])
        assert all(p.decide(a).action == "allow" for a in c["account_ids"])  # that week is long past
