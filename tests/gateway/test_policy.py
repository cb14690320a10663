"""Policy lookups: cluster members, strictest action, expiry, hot reload, bad files; and the log records of
requests the policy decided, as the published exchange-log record describes them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from distillguard.errors import ConfigError
from distillguard.gateway.policy import Policy
from distillguard.records import ExchangeLogRecord

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
    path.write_text('{"subject": "account:a"}')
    with pytest.raises(ConfigError, match="expected a list of policy records"):
        Policy(path)


def test_bad_records_are_reported_and_skipped_and_the_rest_applies(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    good = {"subject": "cluster:c9", "action": "block", "members": ["m9"], "expires_at": FUTURE}
    _write(path, [
        {"subject": "acct:a", "action": "block"},
        {"subject": "account:a", "action": "nuke"},
        {"subject": "cluster:c1", "action": "block", "members": "member1"},  # a string: once failed open
        {"subject": "cluster:c2", "action": "block", "members": 5},  # once made requests 500
        {"subject": "cluster:c3", "action": "block", "members": ["x", 7]},
        {"subject": "account:naive", "action": "block", "expires_at": "2099-01-01T00:00:00"},  # no time zone
        {"subject": "account:t", "action": "block", "transforms": ["nope"]},
        {"subject": "account:r", "action": "block", "reason": 5},
        "not an object",
        good,
    ])
    p = Policy(path)
    assert len(p.errors) == 9
    assert "record 0 skipped: subject: Value error, must be 'account:ID' or 'cluster:ID'" in p.errors[0]
    assert "action: Value error, must be one of allow, monitor" in p.errors[1]
    assert "record 2 skipped: members" in p.errors[2] and "record 5 skipped: expires_at" in p.errors[5]
    for account in ("a", "member1", "m", "naive", "t", "r", "x", "5"):
        assert p.decide(account).action == "allow"  # never a crash, never a half-read record
    assert p.decide("m9").action == "block" and p.cluster_of("m9") == "c9"


def test_a_file_without_one_valid_record_keeps_the_last_good_table(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _write(path, [{"subject": "account:a", "action": "block", "expires_at": FUTURE}])
    p = Policy(path, check_every=0.0)
    _write(path, [{"subject": "account:a", "action": "allow", "members": 5}, {"subject": "x"}])
    assert p.decide("a").action == "block" and p.loads == 1
    with pytest.raises(ConfigError, match="no valid policy record"):
        Policy(path)


def test_scan_output_loads(tmp_path: Path, small_traffic: Path) -> None:
    """A scan's decisions apply from when it runs, whatever the dates of the traffic it read (#21)."""
    from datetime import UTC, datetime, timedelta

    from distillguard.pipeline import scan
    from distillguard.store import Store

    with Store.open(tmp_path / "s.duckdb") as store:
        result = scan(small_traffic, tmp_path / "out", store=store)
    p = Policy(tmp_path / "out" / "policy.json")
    last_seen = datetime.fromisoformat(json.loads((tmp_path / "out" / "summary.json").read_text())["last_seen"])
    assert last_seen < datetime.now(UTC) - timedelta(days=7)  # simulated traffic is older than a decision's week
    assert result.campaigns and p.expired() == 0
    for c in result.campaigns:  # decisions expire a week after the scan
        assert all(p.decide(a).action == "challenge" for a in c["account_ids"])
        assert all(p.decide(a, now=datetime.now(UTC) + timedelta(days=8)).action == "allow" for a in c["account_ids"])


def test_a_stale_policy_is_reported_in_the_log_and_metrics(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Records already expired when the file loads are ignored, and the gateway says so (#21)."""
    from distillguard.gateway.metrics import GatewayMetrics

    path = tmp_path / "policy.json"
    _write(path, [{"subject": "cluster:c1", "action": "challenge", "expires_at": PAST, "members": ["a"]},
                  {"subject": "account:b", "action": "block", "expires_at": PAST},
                  {"subject": "account:c", "action": "throttle", "expires_at": FUTURE},
                  {"subject": "account:d", "action": "monitor"}])  # no expiry: never expires
    with caplog.at_level("WARNING", logger="distillguard.gateway.policy"):
        p = Policy(path)
    assert "2 of 4 records had already expired when loaded (latest expiry 2020-01-01T00:00:00+00:00)" in caplog.text
    assert p.decide("a").action == "allow" and p.decide("c").action == "throttle"
    assert (p.records, p.expired()) == (4, 2)
    text = GatewayMetrics().render(0, policy_records=p.records, policy_expired_records=p.expired()).decode()
    assert "distillguard_policy_expired_records 2.0" in text and "distillguard_policy_records 4.0" in text


def test_the_running_gateway_reports_a_stale_policy(guarded: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A policy file replaced by one whose records have expired: the log warns, /metrics counts them, and the
    campaign member they named is served (an expired decision is no decision)."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "2 + 2?"}], "max_tokens": 4}
    metrics = guarded.url.removesuffix("/v1") + "/metrics"
    assert "distillguard_policy_expired_records 0.0" in httpx.get(metrics).text
    guarded.gw.policy.check_every = 0.0  # re-read on the next request
    _write(guarded.gw.policy.path, [{"subject": "cluster:cluster-0001", "action": "challenge", "expires_at": PAST,
                                     "members": ["acct-member"]}])
    with caplog.at_level("WARNING", logger="distillguard.gateway.policy"):
        assert guarded.post("/v1/chat/completions", chat, who="member").status_code == 200
    assert "1 of 1 records had already expired when loaded" in caplog.text
    text = httpx.get(metrics).text
    assert "distillguard_policy_expired_records 1.0" in text and "distillguard_policy_records 1.0" in text


def test_every_log_record_is_a_published_exchange_log_record(guarded: Any) -> None:
    """Served, streamed, refused by policy (block, challenge) and unauthenticated: each line of the log validates
    against ``records.ExchangeLogRecord`` and the schema in docs/schemas."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "2 + 2?"}], "max_tokens": 4}
    assert guarded.post("/v1/chat/completions", chat).status_code == 200
    assert guarded.post("/v1/chat/completions", {**chat, "stream": True}).status_code == 200
    assert guarded.post("/v1/responses", {"model": "m", "input": "hi"}).status_code == 200
    assert guarded.post("/v1/chat/completions", chat, who="blocked").status_code == 403
    assert guarded.post("/v1/chat/completions", chat, who="member").status_code == 403
    assert guarded.post("/v1/chat/completions", chat, headers={"authorization": "Bearer nope"}).status_code == 401
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schemas"
                         / "exchange-log-record.schema.json").read_text())
    records = guarded.records()
    assert len(records) == 6
    for raw in records:
        Draft202012Validator(schema).validate(raw)
        record = ExchangeLogRecord.model_validate(raw)
        assert record.response is not None
    actions = sorted(r["gateway"]["action"] for r in records if "gateway" in r)
    assert actions == ["allow", "allow", "allow", "block", "challenge"]


def test_metrics_show_gc_pauses_and_event_loop_lag(guarded: Any) -> None:
    """Where a tail comes from (#23): the worker times its collections and how late its loop runs a timer."""
    import gc
    import time

    chat = {"model": "m", "messages": [{"role": "user", "content": "2 + 2?"}], "max_tokens": 4}
    assert guarded.post("/v1/chat/completions", chat).status_code == 200
    gc.collect()
    time.sleep(0.05)
    text = httpx.get(guarded.url.removesuffix("/v1") + "/metrics").text
    assert 'distillguard_gc_pause_seconds_count{generation="2"}' in text
    lag = [line for line in text.splitlines() if line.startswith("distillguard_event_loop_lag_seconds_count")]
    assert lag and float(lag[0].split()[-1]) >= 1
