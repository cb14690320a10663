"""A scriptable fake upstream and the gateway in front of it, served as ``distillguard gateway`` serves it.

The fake upstream is a real HTTP server on loopback; the request's ``model``
picks its behaviour (a normal answer, a non-JSON 200, a reset or a hang mid-
stream, an error that names internal addresses, usage beyond the request's
limit). It counts every call, so a test can assert that a rejected request
never reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.keys import KeyStore
from distillguard.gateway.policy import Policy
from distillguard.gateway.segments import FileOps, SegmentLog
from distillguard.gateway.server import server_config
from distillguard.lab.loopback import serving

FUTURE = "2099-01-01T00:00:00+00:00"
INTERNAL = "http://10.9.8.7:8001/v1 on gpu-node-3.cluster.internal, /opt/models/frontier"


LATE = {"late": 0.3, "silent": 5.0}  # fake upstream models: seconds before a stream's first event


@dataclass
class FakeUpstream:
    url: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    model_listings: int = 0

    def count(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.calls if path is None or p == path)


def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    return {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}


def _limit(body: dict[str, Any]) -> int:
    value = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens") or 16
    return int(min(value, 16))


def fake_upstream_app(state: FakeUpstream) -> Starlette:
    async def complete(request: Request) -> Response:
        body = json.loads(await request.body())
        path = request.url.path
        state.calls.append((path, body))
        model = body.get("model")
        n = int(body.get("n") or 1)
        used = 100_000 if model == "overuse" else _limit(body) * n
        if model == "bad-json" or (model == "not-a-stream" and body.get("stream")):
            return Response(b"<html>upstream proxy error</html>", 200, media_type="text/html")
        if model == "choices-x":
            return JSONResponse({"choices": "x"})
        if model == "negative-usage":
            return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
                                 "usage": {"prompt_tokens": -1_000_000, "completion_tokens": 1}})
        if model == "err500":
            return JSONResponse({"error": {"message": f"CUDA out of memory at {INTERNAL}"}}, 500)
        if model == "err400":
            return JSONResponse({"error": {"message": f"context too long for {INTERNAL}", "type":
                                           "invalid_request_error", "code": "context_length_exceeded"}}, 400)
        if model == "slow":
            for _ in range(300):  # until the gateway gives up and hangs up
                if await request.is_disconnected():
                    return Response(status_code=499)
                await asyncio.sleep(0.05)
        if body.get("stream"):
            return StreamingResponse(_events(path, body, model, used), media_type="text/event-stream")
        if path.endswith("/responses"):
            return JSONResponse({"id": "resp-1", "object": "response", "status": "completed",
                                 "output": [{"type": "message", "role": "assistant",
                                             "content": [{"type": "output_text", "text": "four"}]}],
                                 "usage": {"input_tokens": 5, "output_tokens": used}})
        if path.endswith("/chat/completions"):
            choices = [{"index": i, "message": {"role": "assistant", "content": "four"}, "finish_reason": "stop"}
                       for i in range(n)]
        else:
            choices = [{"index": i, "text": "four", "finish_reason": "stop"} for i in range(n)]
        return JSONResponse({"id": "x-1", "object": "chat.completion", "model": model, "choices": choices,
                             "usage": _usage(body, used)})

    async def models(_: Request) -> Response:
        state.model_listings += 1
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    return Starlette(routes=[Route(p, complete, methods=["POST"])
                             for p in ("/v1/chat/completions", "/v1/completions", "/v1/responses")]
                     + [Route("/v1/models", models)])


async def _events(path: str, body: dict[str, Any], model: str, used: int) -> AsyncIterator[bytes]:
    def event(obj: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    if path.endswith("/responses"):
        yield event({"type": "response.output_text.delta", "delta": "fo"})
        yield event({"type": "response.output_text.delta", "delta": "ur"})
        yield event({"type": "response.completed", "response": {"status": "completed",
                                                                "usage": {"input_tokens": 5, "output_tokens": used}}})
        return
    if model in LATE:  # headers at once, the first event only after a while (a model thinking)
        await asyncio.sleep(LATE[model])
    key = "delta" if path.endswith("/chat/completions") else "text"
    piece: Any = (lambda t: {"content": t}) if key == "delta" else (lambda t: t)
    yield event({"choices": [{"index": 0, key: piece("fo"), "finish_reason": None}]})
    if model == "reset":
        raise RuntimeError("upstream crashed mid-stream")  # uvicorn drops the connection: a reset
    if model == "stream-error":
        yield event({"error": {"message": f"worker died at {INTERNAL}", "code": 500}})
        return
    if model == "hang":
        await asyncio.sleep(5)  # the gateway times out long before (its hang-up cancels this)
    yield event({"choices": [{"index": 0, key: piece("ur"), "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        yield event({"choices": [], "usage": _usage(body, used)})
    yield b"data: [DONE]\n\n"


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    state = FakeUpstream()
    with serving(fake_upstream_app(state)) as url:
        state.url = f"{url}/v1"
        yield state


@contextlib.contextmanager
def serving_gateway(app: Any, settings: GatewaySettings) -> Iterator[str]:
    """The gateway app under the server configuration ``distillguard gateway`` uses, on a free loopback port."""
    with serving(app, config=lambda port: server_config(app, settings, port=port, log_level="warning")) as url:
        yield url


@dataclass
class Running:
    """A gateway in front of the fake upstream, with its keys, log and helpers for the log's records."""

    url: str
    gw: Gateway
    upstream: FakeUpstream
    keys: dict[str, str]
    log_dir: Path

    def headers(self, who: str = "ok") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    def post(self, path: str, body: Any, who: str = "ok", **kw: Any) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**self.headers(who), "content-type": "application/json", **kw.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", content=data, headers=headers, timeout=kw.pop("timeout", 10), **kw)

    def records(self) -> list[dict[str, Any]]:
        self.gw.log.flush()
        rows = []
        for seg in sorted((self.log_dir / "exchanges").glob("*.jsonl")):
            rows += [json.loads(x) for x in seg.read_bytes().splitlines()]
        return rows

    def record(self, exchange_id: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The records of one exchange (waiting for a stream's, written as its relay ends)."""
        deadline = time.monotonic() + timeout
        while not (found := [r for r in self.records() if r["exchange_id"] == exchange_id]):
            if time.monotonic() > deadline:
                return []
            time.sleep(0.02)
        return found


POLICY = [
    {"subject": "account:acct-blocked", "action": "block", "reason": "campaign-0001: 50 linked accounts, score 0.87",
     "expires_at": FUTURE},
    {"subject": "cluster:cluster-0001", "action": "challenge", "reason": "campaign-0001", "expires_at": FUTURE,
     "members": ["acct-member"]},
]


@contextlib.contextmanager
def running_gateway(tmp_path: Path, upstream: FakeUpstream, ops: FileOps | None = None,
                    **settings: Any) -> Iterator[Running]:
    keys = KeyStore(tmp_path / "keys.db")
    secrets = {name: keys.add(f"acct-{name}")[0] for name in ("ok", "blocked", "member", "other", "fuzz")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    options: dict[str, Any] = {"upstream": upstream.url, "log_dir": tmp_path / "log", "flush_interval": 0.02,
                               "keepalive_seconds": 0.05, "live": {"enabled": False}, **settings}
    config = GatewaySettings.model_validate(options)
    log = SegmentLog(config.log_dir, config.flush_interval, stall_seconds=config.log_stall_seconds, ops=ops)
    gw = Gateway(config, keys, Policy(policy), log)
    try:
        with serving_gateway(create_app(gw), config) as url:
            yield Running(url, gw, upstream, secrets, config.log_dir)
    finally:
        log.close()


@pytest.fixture
def guarded(tmp_path: Path, fake_upstream: FakeUpstream) -> Iterator[Running]:
    with running_gateway(tmp_path, fake_upstream) as running:
        yield running


@pytest.fixture
def make_gateway() -> Any:
    """``make_gateway(tmp_path, upstream, **settings)``: a context manager yielding a ``Running`` gateway."""
    return running_gateway


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    """Counts a test reports (fuzz cases, faults injected, records lost); appended as one JSON line to the
    file named by ``DISTILLGUARD_HARDENING_TALLY`` when it is set (benchmarks/results/hardening_gateway.md)."""
    import os

    counts: dict[str, int] = {}
    yield counts
    target = os.environ.get("DISTILLGUARD_HARDENING_TALLY")
    if target and counts:
        with open(target, "a") as f:
            f.write(json.dumps({"test": request.node.nodeid, **counts}) + "\n")


@pytest.fixture(scope="session")
def force_answer(tiny_model_dir: Path) -> Any:
    """``force_answer(text, name)``: request extras that make the tiny lab model answer exactly ``text``
    (a logits processor registered as ``name`` forces each token), for tests of reasoning transforms."""
    def make(text: str, name: str) -> dict[str, Any]:
        import torch
        from transformers import LogitsProcessor

        from distillguard.lab.processors import register
        from distillguard.lab.serve import load_model

        tok = load_model(tiny_model_dir).tokenizer
        ids = tok(text)["input_ids"]

        class Force(LogitsProcessor):
            def __init__(self) -> None:
                self.start = -1

            def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
                self.start = int(input_ids.shape[1]) if self.start < 0 else self.start
                step = int(input_ids.shape[1]) - self.start
                out = torch.full_like(scores, -1e9)
                out[:, ids[step] if step < len(ids) else tok.eos_token_id] = 0.0
                return out

        register(name)(Force)
        return {"logits_processors": [{"name": name}]}
    return make
