"""The gateway in front of the lab model server, driven by the official ``openai`` client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.config import GatewaySettings, LimitSettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import SegmentLog

FUTURE = "2099-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def gateway(model_server: str, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("gateway")
    keys = KeyStore(work / "keys.db")
    secrets = {name: keys.add(f"acct-{name}")[0]
               for name in ("ok", "blocked", "member", "limited", "revoked", "quiet")}
    keys.revoke(keys.lookup(secrets["revoked"]).key_id)  # type: ignore[union-attr]
    policy_path = work / "policy.json"
    policy_path.write_text(json.dumps([
        {"subject": "account:acct-blocked", "action": "block", "reason": "harvesting", "expires_at": FUTURE},
        {"subject": "cluster:cluster-0001", "action": "challenge", "reason": "campaign-0001", "expires_at": FUTURE,
         "members": ["acct-member"]},
        {"subject": "account:acct-limited", "action": "throttle", "reason": "watch", "expires_at": FUTURE},
        {"subject": "account:acct-quiet", "action": "monitor", "reason": "reasoning harvest",
         "expires_at": FUTURE, "transforms": ["withhold_reasoning"]},
    ]))
    settings = GatewaySettings(upstream=model_server, log_dir=work / "log", flush_interval=0.02,
                               keepalive_seconds=0.05,
                               limits=LimitSettings(account_requests_per_minute=600, burst_seconds=1.0,
                                                    throttle_factor=0.2))
    log = SegmentLog(settings.log_dir, settings.flush_interval)
    gw = Gateway(settings, keys, Policy(policy_path), log)
    with serve(create_app(gw)) as url:
        yield {"url": f"{url}/v1", "keys": secrets, "log": log, "log_dir": settings.log_dir}
    log.close()


def _client(gateway: dict[str, Any], who: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway["url"], api_key=gateway["keys"][who], max_retries=0)


def _records(gateway: dict[str, Any]) -> list[dict[str, Any]]:
    gateway["log"].flush()
    rows = []
    for seg in sorted((gateway["log_dir"] / "exchanges").glob("*.jsonl")):
        rows += [json.loads(x) for x in seg.read_text().splitlines()]
    return rows


MSG = [{"role": "user", "content": "What is 3 + 4?"}]


def test_completions_pass_through_and_are_logged(gateway: dict[str, Any]) -> None:
    client = _client(gateway)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=5, temperature=0)
    assert r.choices[0].message.role == "assistant" and r.usage is not None
    record = next(x for x in _records(gateway) if x["response"].get("content") == r.choices[0].message.content
                  and x["account_id"] == "acct-ok")
    assert record["request"]["messages"] == MSG and record["api_key_id"].startswith("key-")
    assert record["client"]["ip"] == "127.0.0.1" and record["client"]["user_agent"].startswith("OpenAI/Python")
    assert record["response"]["usage"]["input_tokens"] == r.usage.prompt_tokens


def test_streaming_relays_every_delta_and_logs_the_whole_answer(gateway: dict[str, Any]) -> None:
    client = _client(gateway)
    stream = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=8, temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert all(c.usage is None for c in [])  # (the usage chunk the gateway requested is not shown)
    deadline = time.monotonic() + 10
    while not (streamed := [x for x in _records(gateway) if x["request"].get("stream")]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    record = streamed[-1]
    assert record["response"]["content"] == text and record["response"]["usage"]["output_tokens"] > 0
    with_usage = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=4, stream=True,
                                                stream_options={"include_usage": True})
    assert any(c.usage is not None for c in with_usage)


def test_policy_actions(gateway: dict[str, Any]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        _client(gateway, "blocked").chat.completions.create(model="tiny", messages=MSG)
    assert blocked.value.code == "account_blocked"
    with pytest.raises(openai.PermissionDeniedError) as challenged:
        _client(gateway, "member").chat.completions.create(model="tiny", messages=MSG)
    assert challenged.value.code == "verification_required"
    body = challenged.value.body
    # The client gets an opaque reference (its exchange id), never the reason, subject or cluster.
    assert isinstance(body, dict) and set(body["verification"]) == {"required", "reference"}
    assert "campaign" not in json.dumps(body) and "cluster" not in json.dumps(body)
    assert "harvesting" not in str(blocked.value.body)
    logged = {x["account_id"]: x for x in _records(gateway) if x["response"].get("finish_reason") == "rejected"}
    assert logged["acct-blocked"]["response"]["status"] == 403
    assert logged["acct-blocked"]["gateway"]["reason"] == "harvesting"
    assert logged["acct-member"]["gateway"]["action"] == "challenge"
    assert logged["acct-member"]["exchange_id"] == body["verification"]["reference"]
    assert logged["acct-member"]["gateway"]["policy_subject"] == "cluster:cluster-0001"


def test_keys_are_checked(gateway: dict[str, Any]) -> None:
    for key in ("dg-not-a-key", gateway["keys"]["revoked"]):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=gateway["url"], api_key=key, max_retries=0).chat.completions.create(
                model="tiny", messages=MSG)
    r = httpx.post(f"{gateway['url']}/chat/completions", json={"messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_bad_requests_get_clear_4xx(gateway: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {gateway['keys']['ok']}"}
    r = httpx.post(f"{gateway['url']}/chat/completions", content=b"{oops", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(f"{gateway['url']}/chat/completions", json={"model": "tiny", "messages": "hi"}, headers=headers)
    assert r.status_code == 400 and "'messages' must be a list" in r.json()["error"]["message"]
    r = httpx.post(f"{gateway['url']}/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=headers)
    assert r.status_code == 413
    with pytest.raises(openai.NotFoundError):  # the upstream's own 404 comes through
        _client(gateway).chat.completions.create(model="no-such-model", messages=MSG)


def test_throttled_accounts_hit_429_with_retry_after(gateway: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {gateway['keys']['limited']}"}
    body = {"model": "tiny", "messages": MSG, "max_tokens": 2}
    # At once: sent one after another, each answer may take longer than the bucket needs to refill (a loaded
    # machine's model server), and none is refused.
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: httpx.post(f"{gateway['url']}/chat/completions", json=body,
                                                      headers=headers, timeout=30), range(6)))
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["type"] == "rate_limit_error"


def test_a_client_that_hangs_up_mid_stream_is_logged_as_interrupted(gateway: dict[str, Any]) -> None:
    headers = {"authorization": f"Bearer {gateway['keys']['ok']}"}
    body = {"model": "tiny", "messages": [{"role": "user", "content": "count to a hundred"}], "max_tokens": 100,
            "stream": True}
    with httpx.stream("POST", f"{gateway['url']}/chat/completions", json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # hang up after the first event
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hung = [x for x in _records(gateway) if "count to a hundred" in json.dumps(x["request"])]
        if hung:
            break
        time.sleep(0.05)
    assert hung and hung[-1]["response"]["interrupted"] is True
    assert hung[-1]["response"]["finish_reason"] == "client_disconnected"


def test_the_log_directory_is_a_traffic_directory(gateway: dict[str, Any], tmp_path: Path) -> None:
    from distillguard.ingest import ingest_traffic_dir
    from distillguard.store import Store

    _client(gateway).chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
    records = _records(gateway)
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(gateway["log_dir"], store)
    # Every record is read: as an exchange, or quarantined with its line when its request was not one
    # (bad JSON, 'messages' not a list, an oversized body: the gateway logged the attempt anyway).
    assert report.exchanges_added >= 1 and report.exchanges_added + report.quarantined == len(records)


def test_metrics_count_requests_decisions_and_the_log_queue(gateway: dict[str, Any]) -> None:
    _client(gateway).chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
    with pytest.raises(openai.PermissionDeniedError):
        _client(gateway, "blocked").chat.completions.create(model="tiny", messages=MSG)
    text = httpx.get(gateway["url"].removesuffix("/v1") + "/metrics").text
    assert 'distillguard_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'distillguard_decisions_total{action="block"}' in text
    assert "distillguard_request_latency_seconds_bucket" in text and "distillguard_log_queue_depth" in text
    assert httpx.get(gateway["url"].removesuffix("/v1") + "/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30  # ready once the live-signal classifier is fitted (a few seconds)
    while (ready := httpx.get(gateway["url"].removesuffix("/v1") + "/readyz")).status_code != 200:
        assert ready.json()["status"] == "warming up" and time.monotonic() < deadline
        time.sleep(0.1)
    assert ready.json()["status"] == "ready"


@pytest.fixture(scope="module")
def forced(force_answer: Any) -> dict[str, Any]:
    """Request extras that make the tiny upstream answer '<think>3 + 4 = 7</think>7'."""
    return force_answer("<think>3 + 4 = 7</think>7", "gateway_test_force")


def test_withhold_reasoning_strips_it_for_the_client_but_logs_it(
        model_server: str, serve: Any, tmp_path: Path, forced: dict[str, Any]) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    secrets = {name: keys.add(f"acct-{name}")[0] for name in ("ok", "quiet")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([{"subject": "account:acct-quiet", "action": "monitor",
                                   "transforms": ["withhold_reasoning"]}]))
    # The gateway's own sampling setting (sent upstream with every request) forces the tiny model's answer.
    settings = GatewaySettings(upstream=model_server, log_dir=tmp_path / "log", flush_interval=0.02,
                               logits_processors=forced["logits_processors"])
    log = SegmentLog(settings.log_dir, settings.flush_interval)
    with serve(create_app(Gateway(settings, keys, Policy(policy), log))) as url:
        gateway = {"url": f"{url}/v1", "keys": secrets, "log": log, "log_dir": settings.log_dir}
        open_answer = _client(gateway).chat.completions.create(model="tiny", messages=MSG, max_tokens=30)
        assert (open_answer.choices[0].message.model_extra or {}).get("reasoning_content") == "3 + 4 = 7"
        quiet = _client(gateway, "quiet")
        r = quiet.chat.completions.create(model="tiny", messages=MSG, max_tokens=30)
        assert r.choices[0].message.content == "7"
        assert "reasoning_content" not in (r.choices[0].message.model_extra or {})
        stream = quiet.chat.completions.create(model="tiny", messages=MSG, max_tokens=30, stream=True)
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "7"
        assert not any((c.choices[0].delta.model_extra or {}).get("reasoning_content")
                       for c in chunks if c.choices)
        deadline = time.monotonic() + 10  # a stream's record is written as its relay ends, just after the client's
        while len(logged := [x for x in _records(gateway) if x["account_id"] == "acct-quiet"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    log.close()
    assert len(logged) == 2 and all(x["response"]["reasoning_content"] == "3 + 4 = 7" for x in logged)
    assert all(x["gateway"]["transforms"] == ["withhold_reasoning"] for x in logged)
    assert all(x["gateway"]["logits_processors"] == forced["logits_processors"] for x in logged)


def test_text_completions_and_responses_pass_through_and_are_logged(gateway: dict[str, Any]) -> None:
    client = _client(gateway)
    text = client.completions.create(model="tiny", prompt="What is 3 + 4?", max_tokens=4, temperature=0)
    assert text.choices[0].finish_reason in ("stop", "length") and text.usage is not None
    # The lab server has no Responses API: its 404 comes back unchanged, and the exchange is still logged.
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="tiny", input="What is 3 + 4?")
    logged = {r["endpoint"]: r for r in _records(gateway) if r["account_id"] == "acct-ok"}
    assert logged["/v1/completions"]["response"]["content"] == text.choices[0].text
    assert logged["/v1/responses"]["response"]["status"] == 404
    assert logged["/v1/responses"]["request"]["input"] == "What is 3 + 4?"
