"""Issue #16, gateway side: what an attacker or a careless client tried, through a real gateway on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

INTERNAL = ("10.9.8.7", "gpu-node-3", "/opt/models", "CUDA", "cluster.internal")  # what the fake upstream leaks

MSG = [{"role": "user", "content": "What is 2 + 2?"}]
CHAT = {"model": "fake", "messages": MSG}
BODIES = {"/v1/chat/completions": CHAT, "/v1/completions": {"model": "fake", "prompt": "What is 2 + 2?"},
          "/v1/responses": {"model": "fake", "input": "What is 2 + 2?"}}
LIMIT_FIELD = {"/v1/chat/completions": "max_tokens", "/v1/completions": "max_tokens",
               "/v1/responses": "max_output_tokens"}


def _bad_shapes(path: str) -> list[dict[str, Any]]:
    base = BODIES[path]
    shapes: list[dict[str, Any]] = [{**base, "stream": "true"}, {**base, "temperature": "0.5"},
                                    {**base, "model": 5}, {**base, "stream_options": "x"},
                                    {**base, LIMIT_FIELD[path]: "100"}, {**base, LIMIT_FIELD[path]: "abc"},
                                    {**base, LIMIT_FIELD[path]: -1_000_000}, {**base, LIMIT_FIELD[path]: 10**12},
                                    {**base, LIMIT_FIELD[path]: True}, {**base, "temperature": 7},
                                    {k: v for k, v in base.items() if k != "model"}]
    if path != "/v1/responses":
        shapes += [{**base, "n": "2"}, {**base, "n": 0}, {**base, "n": 10_000}]
    else:
        shapes += [{**base, "max_tokens": 100}, {**base, "input": 5}, {**base, "input": []}]
    if path == "/v1/chat/completions":
        shapes += [{**base, "messages": [{"role": "wizard", "content": "hi"}]},
                   {**base, "messages": [{"role": "user", "content": 5}]}, {**base, "messages": []},
                   {**base, "max_output_tokens": 10}]
    if path == "/v1/completions":
        shapes += [{**base, "prompt": [1, 2, 3]}, {**base, "prompt": None}, {**base, "best_of": "3"}]
    return shapes


@pytest.mark.parametrize("path", list(BODIES))
def test_wrong_types_are_a_clear_400_never_sent_upstream_and_logged_once(guarded: Any, path: str) -> None:
    for body in _bad_shapes(path):
        r = guarded.post(path, body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"] and error["code"], body
        logged = guarded.record(r.headers["x-request-id"])
        assert len(logged) == 1 and logged[0]["response"]["status"] == 400, body
        assert logged[0]["request"] == body and logged[0]["endpoint"] == path
    assert guarded.upstream.count() == 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", list(BODIES))
def test_each_endpoint_is_served_and_logged_in_the_shape_scan_reads(guarded: Any, path: str,
                                                                     stream: bool) -> None:
    body = {**BODIES[path], LIMIT_FIELD[path]: 8, "stream": stream}
    r = guarded.post(path, body)
    assert r.status_code == 200
    (record,) = guarded.record(r.headers["x-request-id"])
    assert record["endpoint"] == path and record["request"] == body and record["account_id"] == "acct-ok"
    assert record["response"]["status"] == 200 and record["response"]["content"] == "four"
    assert record["response"]["usage"]["output_tokens"] == 8
    if path == "/v1/completions":
        assert record["request"]["prompt"] == "What is 2 + 2?"


def test_served_records_are_read_by_ingest(guarded: Any, tmp_path: Path) -> None:
    from distillguard.ingest import ingest_traffic_dir
    from distillguard.store import Store

    for path, body in BODIES.items():
        for stream in (False, True):
            assert guarded.post(path, {**body, "stream": stream}).status_code == 200
    served = [r for r in guarded.records() if r["response"]["status"] < 400]
    assert len(served) == 6
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(guarded.log_dir, store)
    assert report.quarantined == 0 and report.exchanges_added == 6


def test_the_official_client_works_through_every_endpoint(guarded: Any) -> None:
    client = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=guarded.keys["ok"], max_retries=0)
    assert client.chat.completions.create(model="fake", messages=MSG, max_tokens=4).choices[0].message.content
    assert client.completions.create(model="fake", prompt="2 + 2 =", max_tokens=4).choices[0].text == "four"
    assert client.responses.create(model="fake", input="2 + 2?", max_output_tokens=16).output_text == "four"
    assert [m.id for m in client.models.list().data] == ["fake"]


def _tokens_level(running: Any, account: str) -> float:
    limiter: Any = running.gw.limiter
    return float(limiter._level(f"tok:acct:{account}", running.gw.limits_for(account, None, False)[1][0][1],
                                limiter.clock()))


def test_token_limits_cannot_be_bypassed(
        fake_upstream: Any, tmp_path: Path, make_gateway: Any) -> None:
    # 10,000-token bucket, refilling at 60 a minute (1 a second): nothing refills within the test.
    limits = {"account_tokens_per_minute": 60, "burst_seconds": 10_000, "account_requests_per_minute": 10_000}
    with make_gateway(tmp_path, fake_upstream, limits=limits) as g:
        path = "/v1/chat/completions"
        # A negative max_tokens cannot refill a bucket: it is a 400 before the limiter.
        assert g.post(path, {**CHAT, "max_tokens": -1_000_000}).status_code == 400
        # n × max_tokens is reserved: 8 × 2,000 cannot fit a 10,000-token bucket.
        r = g.post(path, {**CHAT, "max_tokens": 2000, "n": 8})
        assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
        # The responses endpoint's own field is read.
        r = g.post("/v1/responses", {**BODIES["/v1/responses"], "max_output_tokens": 20_000})
        assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
        # Usage beyond the reservation is charged: one answer of 100,005 tokens puts the bucket in debt.
        ok = g.post(path, {**CHAT, "model": "overuse", "max_tokens": 100})
        assert ok.status_code == 200
        (record,) = g.record(ok.headers["x-request-id"])
        assert record["gateway"]["charged_beyond_reservation"] > 90_000
        assert _tokens_level(g, "acct-ok") < -80_000
        for _ in range(3):  # the debt carries to later requests
            assert g.post(path, {**CHAT, "max_tokens": 100}).status_code == 429
        assert fake_upstream.count() == 1


def test_forged_usage_is_a_502_and_refunds_nothing(guarded: Any) -> None:
    before = _tokens_level(guarded, "acct-ok")
    r = guarded.post("/v1/chat/completions", {**CHAT, "model": "negative-usage", "max_tokens": 10})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_invalid_response"
    assert _tokens_level(guarded, "acct-ok") <= before  # the reservation is kept
    assert len(guarded.record(r.headers["x-request-id"])) == 1


@pytest.mark.parametrize("model", ["bad-json", "choices-x"])
def test_a_malformed_upstream_answer_is_a_logged_502(guarded: Any, model: str) -> None:
    r = guarded.post("/v1/chat/completions", {**CHAT, "model": model})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_invalid_response"
    (record,) = guarded.record(r.headers["x-request-id"])
    assert record["response"]["status"] == 502


def test_upstream_error_texts_and_addresses_never_reach_clients(guarded: Any, fake_upstream: Any) -> None:
    for model, status in (("err500", 502), ("err400", 400)):
        r = guarded.post("/v1/chat/completions", {**CHAT, "model": model})
        assert r.status_code == status
        for leak in INTERNAL:
            assert leak not in r.text, (model, r.text)
        (record,) = guarded.record(r.headers["x-request-id"])
        assert "10.9.8.7" in record["response"]["error"]["detail"]  # the operator keeps the upstream's words
    assert r.json()["error"]["code"] == "context_length_exceeded"
    fake_upstream.url = "http://127.0.0.1:1/v1"  # nothing listens there
    guarded.gw.upstream = fake_upstream.url
    r = guarded.post("/v1/chat/completions", CHAT)
    assert r.status_code == 502 and "127.0.0.1" not in r.text and "Connect" not in r.text


@pytest.mark.parametrize("model", ["stream-error", "not-a-stream"])
def test_a_stream_never_relays_upstream_errors(guarded: Any, model: str) -> None:
    r = guarded.post("/v1/chat/completions", {**CHAT, "model": model, "stream": True})
    assert r.status_code == (200 if model == "stream-error" else 502)
    assert "upstream proxy error" not in r.text and not any(leak in r.text for leak in INTERNAL)
    (record,) = guarded.record(r.headers["x-request-id"])
    if model == "stream-error":
        assert record["response"]["finish_reason"] == "upstream_error" and "10.9.8.7" in str(record["response"])
    else:
        assert record["response"]["error"]["code"] == "upstream_invalid_response"


def test_403_bodies_are_opaque(guarded: Any) -> None:
    for who, code in (("blocked", "account_blocked"), ("member", "verification_required")):
        r = guarded.post("/v1/chat/completions", CHAT, who=who)
        assert r.status_code == 403 and r.json()["error"]["code"] == code
        for leak in ("campaign", "linked", "0.87", "cluster", "score"):
            assert leak not in r.text
        (record,) = guarded.record(r.headers["x-request-id"])
        assert r.headers["x-request-id"] in r.json()["error"]["message"]
        assert record["gateway"]["reason"].startswith("campaign-0001")
    assert guarded.upstream.count() == 0


def test_blocked_accounts_cannot_list_models_and_readyz_never_calls_upstream(
        fake_upstream: Any, tmp_path: Path, make_gateway: Any) -> None:
    with make_gateway(tmp_path, fake_upstream, upstream_probe_seconds=3600) as guarded:  # one probe, at start
        _models_and_readiness(guarded)


def _models_and_readiness(guarded: Any) -> None:
    base = guarded.upstream.model_listings
    for who in ("blocked", "member"):
        r = httpx.get(f"{guarded.url}/v1/models", headers=guarded.headers(who))
        assert r.status_code == 403
        (record,) = guarded.record(r.headers["x-request-id"])
        assert record["endpoint"] == "/v1/models" and record["response"]["status"] == 403
    assert httpx.get(f"{guarded.url}/v1/models").status_code == 401
    for _ in range(20):
        assert httpx.get(f"{guarded.url}/readyz").status_code == 200
    assert guarded.upstream.model_listings == base  # neither blocked listings nor readiness reached it
    assert httpx.get(f"{guarded.url}/v1/models", headers=guarded.headers()).status_code == 200
    assert guarded.upstream.model_listings == base + 1


def test_x_forwarded_for_is_trusted_only_for_configured_hops(
        fake_upstream: Any, tmp_path: Path, make_gateway: Any) -> None:
    forged = {"x-forwarded-for": "198.51.100.9"}
    with make_gateway(tmp_path / "a", fake_upstream) as g:
        r = g.post("/v1/chat/completions", CHAT, headers=forged)
        assert g.record(r.headers["x-request-id"])[0]["client"]["ip"] == "127.0.0.1"
    with make_gateway(tmp_path / "b", fake_upstream, trusted_hops=1) as g:
        r = g.post("/v1/chat/completions", CHAT, headers=forged)
        assert g.record(r.headers["x-request-id"])[0]["client"]["ip"] == "198.51.100.9"


def test_key_store_and_log_files_are_private(guarded: Any, tmp_path: Path) -> None:
    assert guarded.post("/v1/chat/completions", CHAT).status_code == 200
    guarded.gw.log.flush()
    files = [tmp_path / "keys.db", *(guarded.log_dir / "exchanges").glob("*.jsonl")]
    assert len(files) >= 2
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    assert stat.S_IMODE(os.stat(guarded.log_dir / "exchanges").st_mode) == 0o700
    (tmp_path / "old.db").touch(mode=0o644)
    from distillguard.gateway.keys import KeyStore

    KeyStore(tmp_path / "old.db")
    assert stat.S_IMODE(os.stat(tmp_path / "old.db").st_mode) == 0o600


def test_headers_are_capped_and_unauthenticated_clients_limited(guarded: Any) -> None:
    url = f"{guarded.url}/v1/chat/completions"
    r = httpx.post(url, json=CHAT, headers={"user-agent": "u" * 4000})
    assert r.status_code == 401
    (record,) = guarded.record(r.headers["x-request-id"])
    assert len(record["client"]["user_agent"]) <= 513
    assert record["truncated"] == [{"field": "client.user_agent", "length": 4000}]
    r = httpx.post(url, json=CHAT, headers={**guarded.headers(), "user-agent": "u" * 20_000})
    assert r.status_code == 431 and guarded.upstream.count() == 0
    assert len(guarded.record(r.headers["x-request-id"])[0]["client"]["user_agent"]) <= 513
    before = sum(f.stat().st_size for f in (guarded.log_dir / "exchanges").glob("*.jsonl"))
    # Refused by the server while the head is read (it may hang up before we finish sending): never logged.
    with contextlib.suppress(httpx.TransportError):
        assert httpx.post(url, json=CHAT, headers={"user-agent": "u" * (2 * 1024 * 1024)}).status_code in (400, 431)
    started = time.monotonic()
    statuses = [httpx.post(url, json=CHAT, headers={"authorization": "Bearer dg-guess"}).status_code
                for _ in range(30)]
    refilled = int(time.monotonic() - started) + 1  # 20 a burst, then 1 a second
    assert statuses.count(401) <= 20 + refilled and statuses.count(429) >= 10 - refilled
    growth = sum(f.stat().st_size for f in (guarded.log_dir / "exchanges").glob("*.jsonl")) - before
    assert growth < 31 * 2048


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` within ``seconds`` (reading whatever it sends first)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_unfinished_heads_and_bodies_time_out(
        fake_upstream: Any, tmp_path: Path, make_gateway: Any, parser: str) -> None:
    with make_gateway(tmp_path, fake_upstream, header_timeout=0.5, body_timeout=0.5, http_parser=parser) as g:
        started = time.monotonic()
        silent, trickle = _connect(g.url), _connect(g.url)
        trickle.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        assert _closed_within(silent, 5) and _closed_within(trickle, 5)
        assert time.monotonic() - started < 3
        body = json.dumps(CHAT).encode()
        slow = _connect(g.url)
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {g.keys['ok']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:10])
        slow.settimeout(5)
        answer = slow.recv(65536)
        slow.close()
        assert answer.startswith(b"HTTP/1.1 408")
        timed_out = [r for r in g.records() if r["response"]["status"] == 408]
        assert len(timed_out) == 1 and timed_out[0]["account_id"] == "acct-ok"
        assert fake_upstream.count() == 0


@pytest.mark.parametrize("parser", ["h11", "httptools"])
@pytest.mark.parametrize("shape", ["one endless header", "many headers"])
def test_a_request_head_growing_past_its_cap_is_refused_while_it_is_read(
        fake_upstream: Any, tmp_path: Path, make_gateway: Any, parser: str, shape: str) -> None:
    with make_gateway(tmp_path, fake_upstream, http_parser=parser, max_header_bytes=4096) as g:
        sock = _connect(g.url)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        if shape == "one endless header":
            sock.sendall(b"x-big: ")
        sent, refused = 0, False
        try:
            while sent < 256 * 1024:
                chunk = b"a" * 512 if shape == "one endless header" else b"x-h%06d: %s\r\n" % (sent, b"a" * 500)
                sock.sendall(chunk)
                sent += len(chunk)
                time.sleep(0.001)
        except OSError:  # the server hung up while this was still sending
            refused = True
        sock.settimeout(5)
        try:
            answer = sock.recv(65536)
            refused = refused or answer.startswith(b"HTTP/1.1 4") or answer == b""
        except ConnectionResetError:
            refused = True
        except TimeoutError:
            pass  # still waiting for the head's end: not refused
        sock.close()
        assert refused
        assert g.records() == [] and fake_upstream.count() == 0  # never reached the app


def test_an_internal_error_is_logged_once_and_refunded(guarded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _tokens_level(guarded, "acct-ok")

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("distillguard.gateway.upstream.forward", broken)
    monkeypatch.setattr("distillguard.gateway.app.forward", broken)
    r = guarded.post("/v1/chat/completions", {**CHAT, "max_tokens": 100})
    assert r.status_code == 500 and "a bug" not in r.text
    (record,) = guarded.record(r.headers["x-request-id"])
    assert record["response"]["status"] == 500 and record["response"]["error"]["code"] == "internal_error"
    assert _tokens_level(guarded, "acct-ok") >= before - 1  # the reservation came back


@pytest.mark.parametrize("raw", [
    b'{"model": "fake", "messages": [{"role": "user", "content": "\\ud800"}]}',  # a lone surrogate
    b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',
    b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "max_tokens": 18446744073709551616}',
    b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "n": NaN}',
    b'[' * 5000 + b']' * 5000,  # nesting deeper than the parser takes
    b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "metadata": ' + b'[' * 600 + b']' * 600 + b'}',
    b'{"model": "fake", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": ' + b'[' * 300
    + b']' * 300 + b'}}',  # the parser takes it, the log could not write it: never served
    b'\xff\xfe{}', b'', b'null', b'"a string"',
])
def test_odd_raw_bodies_are_400s_and_logged(guarded: Any, raw: bytes) -> None:
    r = guarded.post("/v1/chat/completions", raw)
    assert r.status_code == 400, r.text
    (record,) = guarded.record(r.headers["x-request-id"])
    assert record["response"]["status"] == 400
    assert record["response"]["error"]["code"] in ("invalid_json", "invalid_type")
    assert guarded.upstream.count() == 0
