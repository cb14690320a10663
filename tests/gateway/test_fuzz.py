"""Property-based fuzzing of the running gateway (Hypothesis): request bodies and headers, as an attacker or a
careless client would send them, against a real gateway on loopback in front of the fake upstream.

Invariants: never a 5xx from bad input; every request that reached the gateway's handler is logged exactly
once with the status the client got; a rejected request never reaches the upstream; a served one always
does, and ``scan``'s ingest reads it; the token budget is never exceeded (beyond one answer's
overshoot, which is charged as debt).
"""

from __future__ import annotations

import json
import os
import string
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
BASE = {"/v1/chat/completions": {"model": "fake", "messages": [{"role": "user", "content": "2 + 2?"}]},
        "/v1/completions": {"model": "fake", "prompt": "2 + 2 ="},
        "/v1/responses": {"model": "fake", "input": "2 + 2?"}}
FIELDS = ("model", "messages", "prompt", "input", "instructions", "stream", "stream_options", "max_tokens",
          "max_completion_tokens", "max_output_tokens", "n", "best_of", "temperature", "top_p", "stop", "logprobs",
          "top_logprobs", "seed", "user", "tools", "tool_choice", "logit_bias", "response_format", "metadata")
TOKENS_PER_MINUTE, BURST_SECONDS = 6000.0, 10.0  # a 1,000-token bucket refilling at 100 a second
EXAMPLES = int(os.environ.get("DISTILLGUARD_FUZZ_EXAMPLES", "300"))  # more for a measurement run
OVERSHOOT = 5  # the fake upstream's prompt tokens: at most this beyond a reservation, charged as debt

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.integers(-3, 40)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "wizard"]) | json_values,
     "content": st.text(max_size=30) | json_values}), max_size=3)
field_values = {
    "messages": messages | json_values, "prompt": st.text(max_size=30) | st.lists(st.text(max_size=5)) | json_values,
    "input": st.text(max_size=30) | messages | json_values,
    "stream": st.booleans() | json_values, "n": st.integers(-2, 5) | json_values,
    "max_tokens": st.integers(-10, 300) | json_values, "max_output_tokens": st.integers(-10, 300) | json_values,
    "model": st.sampled_from(["fake", "other-model"]) | json_values,
}
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=40).map(lambda t: t.strip() or "x") | st.builds(
    lambda c, k: c * k, st.sampled_from("ab;,"), st.sampled_from([600, 9000, 40_000]))  # HTTP allows no edge spaces


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    path = draw(st.sampled_from(PATHS))
    if draw(st.integers(0, 9)) == 0:
        raw = draw(st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()))
    else:
        body = dict(BASE[path])
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
            if draw(st.integers(0, 4)) == 0:
                body.pop(name, None)
            else:
                body[name] = draw(field_values.get(name, json_values))
        raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    auth = draw(st.sampled_from(["ok", "ok", "ok", "blocked", "bad", "none"]))
    headers["authorization"] = {"bad": "Bearer dg-not-a-key", "none": "Basic x"}.get(auth, auth)
    for name in draw(st.lists(st.sampled_from(["user-agent", "x-forwarded-for", "x-tls-fingerprint", "x-extra"]),
                              max_size=2, unique=True)):
        headers[name] = draw(header_text)
    return path, raw, headers


def test_fuzzed_requests_keep_every_invariant(tmp_path: Path, fake_upstream: Any, make_gateway: Any,
                                              tally: dict[str, int]) -> None:
    limits = {"account_requests_per_minute": 1_000_000, "account_tokens_per_minute": TOKENS_PER_MINUTE,
              "burst_seconds": BURST_SECONDS, "default_max_tokens": 16}
    sent: dict[str, int] = {}  # exchange id → status the client got
    refused_by_server = 0
    with make_gateway(tmp_path, fake_upstream, limits=limits) as g:
        started = time.monotonic()

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(requests())
        def one(request: tuple[str, bytes, dict[str, str]]) -> None:
            nonlocal refused_by_server
            path, raw, headers = request
            if headers["authorization"] in ("ok", "blocked"):
                headers["authorization"] = f"Bearer {g.keys['ok' if headers['authorization'] == 'ok' else 'blocked']}"
            calls = fake_upstream.count()
            try:
                r = httpx.post(f"{g.url}{path}", content=raw, headers=headers, timeout=10)
            except httpx.TransportError:  # the server refused a head over its cap and hung up while we sent it
                assert sum(len(k) + len(v) for k, v in headers.items()) > g.gw.settings.max_header_bytes
                assert fake_upstream.count() == calls
                refused_by_server += 1
                return
            assert r.status_code < 500, (path, raw, r.status_code, r.text)
            reached = fake_upstream.count() - calls
            assert reached == (1 if r.status_code < 400 else 0), (path, raw, r.status_code, r.text)
            if "x-request-id" not in r.headers:  # refused by the server while reading the head (too large)
                assert r.status_code in (400, 431)
                refused_by_server += 1
                return
            sent[r.headers["x-request-id"]] = r.status_code

        one()
        elapsed = time.monotonic() - started
        g.gw.log.flush()
        rows = g.records()
        usage = sum(r["response"]["usage"]["input_tokens"] + r["response"]["usage"]["output_tokens"]
                    for r in rows if r["response"]["status"] == 200)
    ids = [r["exchange_id"] for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == set(sent)  # each request logged exactly once
    assert all(r["response"]["status"] == sent[r["exchange_id"]] for r in rows)  # with its outcome
    assert usage <= TOKENS_PER_MINUTE * BURST_SECONDS / 60 + TOKENS_PER_MINUTE / 60 * elapsed + OVERSHOOT
    served = [r for r in rows if r["response"]["status"] < 400]
    _ingest_reads_every_served_record(g.log_dir, tmp_path, {r["exchange_id"] for r in served})
    statuses: dict[str, int] = {}
    for status in sent.values():
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    tally.update(fuzz_cases=len(sent) + refused_by_server, served=len(served), refused_by_server=refused_by_server,
                 records=len(rows), records_lost=len(set(sent) - set(ids)), tokens_used=usage,
                 **{f"status_{k}": v for k, v in sorted(statuses.items())})
    assert len(served) >= 20 and refused_by_server + len(sent) >= EXAMPLES


def _ingest_reads_every_served_record(log_dir: Path, tmp_path: Path, served: set[str]) -> None:
    from distillguard.ingest import ingest_traffic_dir
    from distillguard.store import Store

    with Store.open(tmp_path / "fuzz.duckdb") as store:
        ingest_traffic_dir(log_dir, store)
        read = set(store.read("exchanges", ["exchange_id"]).column("exchange_id").to_pylist())
    assert served <= read, f"served but not analysable: {sorted(served - read)[:5]}"
