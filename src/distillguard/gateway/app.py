"""The gateway's ASGI app: authenticate, decide, limit, forward, log.

Per request: the API key maps to an account (401 otherwise); the policy gives
the account's (or its cluster's) action (``block`` and ``challenge`` answer 403,
``throttle`` tightens the limits, ``monitor`` flags the log record); the rate
limiter reserves one request and prompt + ``max_tokens`` tokens for the account
and its cluster (429 with ``Retry-After`` otherwise); the request goes upstream
and the answer comes back as it arrives (streams byte for byte, with keep-alive
comments until the first token); unused tokens are refunded; and one record in
the exchange-log format goes to the segment log, for rejected and interrupted
exchanges too. Errors use the OpenAI error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from distillguard.gateway.canary import Canary, CanaryMaker
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.keys import KeyRecord, KeyStore
from distillguard.gateway.limits import Limit, Limiter, MemoryLimiter, RedisLimiter
from distillguard.gateway.live import LiveSignals
from distillguard.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from distillguard.gateway.policy import STRICTNESS, Decision, Policy
from distillguard.gateway.segments import SegmentLog
from distillguard.gateway.sse import StreamCapture

log = logging.getLogger(__name__)
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)  # aiohttp's timeouts are TimeoutErrors


class _Reject(Exception):
    """A request answered with an error response (and logged), before or instead of going upstream."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers, self.extra = headers or {}, extra or {}

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": None, "code": self.code, **self.extra}
        return JSONResponse({"error": error}, self.status, headers=self.headers)


class Gateway:
    """State shared by the routes: settings, keys, policy, limiter, log, upstream client."""

    def __init__(self, settings: GatewaySettings, keys: KeyStore, policy: Policy, log_: SegmentLog,
                 limiter: Limiter | None = None) -> None:
        self.settings, self.keys, self.policy, self.log = settings, keys, policy, log_
        self.limiter: Limiter = limiter or (RedisLimiter(settings.redis_url) if settings.redis_url
                                            else MemoryLimiter())
        self.metrics = GatewayMetrics()
        self.upstream = settings.upstream.rstrip("/")
        self.client: aiohttp.ClientSession | None = None
        self.live = LiveSignals(settings.live)
        self.canaries = CanaryMaker(settings.canaries)
        self._policy_loads = policy.loads

    def decide(self, account: str, cluster: str | None) -> Decision:
        """The policy's decision, made stricter by a live flag the current policy has not ruled on.

        A live flag lasts until the next policy file (the next scan) is loaded; an explicit
        policy record for the account or its cluster always wins over it.
        """
        decision = self.policy.decide(account, cluster)
        if self.policy.loads != self._policy_loads:
            self._policy_loads = self.policy.loads
            self.live.reset()
        flag = self.live.flag(account)
        if flag and decision.subject is None and STRICTNESS[flag.action] > STRICTNESS[decision.action]:
            return Decision(flag.action, flag.reason, "live", None, decision.transforms, decision.logits_processors)
        return decision

    def record(self, record: dict[str, Any]) -> None:
        """The end of every exchange: one log record, and the metrics counted from it."""
        self.log.append(record)
        self.metrics.observe(record)

    # -- request context ----------------------------------------------------

    def client_info(self, request: Request) -> dict[str, Any]:
        peer = request.client.host if request.client else None
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
        chain = [*hops, peer] if peer else hops
        n = self.settings.trusted_hops
        ip = chain[-(n + 1)] if len(chain) > n else (chain[0] if chain else None)
        return {"ip": ip, "user_agent": request.headers.get("user-agent"),
                "tls_fingerprint": request.headers.get(self.settings.tls_fingerprint_header)}

    def authenticate(self, request: Request) -> KeyRecord:
        auth = request.headers.get("authorization", "")
        secret = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not secret:
            raise _Reject(401, "You didn't provide an API key (Authorization: Bearer ...).",
                          "invalid_request_error", "missing_api_key")
        record = self.keys.lookup(secret)
        if record is None:
            raise _Reject(401, "Incorrect API key provided, or the key was revoked.", "invalid_request_error",
                          "invalid_api_key")
        return record

    def limits_for(self, account: str, cluster: str | None, throttled: bool) -> tuple[list[Any], list[Any]]:
        """(request charges, token-bucket limits) for the account and its cluster."""
        s = self.settings.limits
        factor = s.throttle_factor if throttled else 1.0

        def rule(per_minute: float) -> Limit:
            return Limit(per_minute, per_minute * s.burst_seconds / 60.0).scaled(factor)

        requests = [(f"req:acct:{account}", rule(s.account_requests_per_minute), 1.0)]
        tokens = [(f"tok:acct:{account}", rule(s.account_tokens_per_minute))]
        if cluster:
            requests.append((f"req:cluster:{cluster}", rule(s.cluster_requests_per_minute), 1.0))
            tokens.append((f"tok:cluster:{cluster}", rule(s.cluster_tokens_per_minute)))
        return requests, tokens

    def upstream_headers(self) -> dict[str, str]:
        key = self.settings.upstream_api_key
        return {"authorization": f"Bearer {key}"} if key else {}


def _decision_reject(decision: Decision) -> _Reject | None:
    if decision.action == "block":
        return _Reject(403, f"This account is blocked: {decision.reason or 'policy'}.", "permission_error",
                       "account_blocked")
    if decision.action == "challenge":
        return _Reject(403, "Additional verification is required before this account can continue.",
                       "permission_error", "verification_required",
                       extra={"verification": {"required": True, "reason": decision.reason,
                                               "subject": decision.subject}})
    return None


def _estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A cheap upper-ish estimate (4 characters a token) for the reservation; refunded after."""
    return max(1, len(orjson.dumps(body.get("messages") or body.get("input") or body.get("prompt") or "")) // 4)


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Reject(413, f"Request body larger than {limit} bytes.", "invalid_request_error",
                          "request_too_large")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise _Reject(400, f"We could not parse the JSON body of your request: {exc}", "invalid_request_error",
                      "invalid_json") from exc
    if not isinstance(body, dict):
        raise _Reject(400, "The request body must be a JSON object.", "invalid_request_error", "invalid_json")
    return body


def create_app(gw: Gateway) -> Starlette:
    async def proxy(request: Request) -> Response:
        started, now = time.perf_counter(), datetime.now(UTC)
        record: dict[str, Any] = {"exchange_id": f"gx-{uuid.uuid4().hex}", "timestamp": now.isoformat(),
                                  "account_id": "unauthenticated", "client": gw.client_info(request),
                                  "endpoint": request.url.path}
        body: dict[str, Any] = {}
        try:
            key = gw.authenticate(request)
            record.update(account_id=key.account_id, api_key_id=key.key_id)
            if key.organization:
                record["organization"] = key.organization
            body = await _read_json(request, gw.settings.max_body_bytes)
            record["request"] = body
            if request.url.path.endswith("/chat/completions") and not isinstance(body.get("messages"), list):
                raise _Reject(400, "'messages' must be a list of messages.", "invalid_request_error", "invalid_value")
            cluster = gw.policy.cluster_of(key.account_id)
            decision = gw.decide(key.account_id, cluster)
            processors = [*gw.settings.logits_processors, *decision.logits_processors]
            record["gateway"] = {"action": decision.action, "policy_subject": decision.subject, "cluster_id": cluster,
                                 "transforms": list(decision.transforms)}
            if processors:
                record["gateway"]["logits_processors"] = processors
            if decision.action != "allow" and decision.reason:
                record["gateway"]["reason"] = decision.reason
            gw.live.observe(key.account_id, body)
            canary = None if request.url.path.endswith("/responses") else \
                gw.canaries.for_exchange(decision.action, record["exchange_id"])
            if canary:
                record["gateway"]["canary"] = canary.to_json()
            reject = _decision_reject(decision)
            if reject:
                raise reject
            requests, token_rules = gw.limits_for(key.account_id, cluster, decision.action == "throttle")
            reserved = _estimate_prompt_tokens(body) + int(
                body.get("max_completion_tokens") or body.get("max_tokens") or gw.settings.limits.default_max_tokens)
            charges = requests + [(k, lim, float(reserved)) for k, lim in token_rules]
            grant = gw.limiter.reserve(charges)
            if not grant.ok:
                wait = grant.retry_after
                if wait == float("inf"):
                    raise _Reject(400, "max_tokens is larger than this account's token budget allows.",
                                  "invalid_request_error", "max_tokens_too_large")
                raise _Reject(429, f"Rate limit reached for {grant.bucket}; retry in {wait:.1f} s.",
                              "rate_limit_error", "rate_limit_exceeded",
                              headers={"retry-after": str(max(1, int(wait + 0.999)))})
        except _Reject as rej:
            _log_rejected(gw, record, rej, started)
            rejected = rej.response()
            rejected.headers["x-request-id"] = record["exchange_id"]
            return rejected
        except ClientDisconnect:
            _log_rejected(gw, record, _Reject(499, "client closed the request", "client_error"), started)
            return Response(status_code=499)

        def refund(used: int | None) -> None:
            if used is not None and used < reserved:
                gw.limiter.refund([(k, lim, float(reserved - used)) for k, lim in token_rules])

        response = await _forward(gw, request, body, record, started, refund,
                                  withhold_reasoning="withhold_reasoning" in decision.transforms,
                                  processors=processors, canary=canary)
        response.headers["x-request-id"] = record["exchange_id"]  # the log record of this exchange
        return response

    async def models(request: Request) -> Response:
        try:
            gw.authenticate(request)
        except _Reject as rej:
            return rej.response()
        assert gw.client is not None
        try:
            async with gw.client.get(f"{gw.upstream}/models", headers=gw.upstream_headers()) as upstream:
                content, status = await upstream.read(), upstream.status
        except UPSTREAM_ERRORS as exc:
            return _Reject(502, f"upstream unavailable: {exc!r}", "api_error", "upstream_error").response()
        return Response(content, status, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(gw.metrics.render(gw.log.pending, gw.live.flagged), media_type=CONTENT_TYPE)

    async def readyz(_: Request) -> Response:
        assert gw.client is not None
        try:
            async with gw.client.get(f"{gw.upstream}/models", headers=gw.upstream_headers(),
                                     timeout=aiohttp.ClientTimeout(total=2.0)) as r:
                ready = r.status < 500
        except UPSTREAM_ERRORS:
            ready = False
        warm = gw.live.ready.is_set()
        status = "ready" if ready and warm else "upstream unavailable" if not ready else "warming up"
        return JSONResponse({"status": status, "log_queue": gw.log.pending}, 200 if ready and warm else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # aiohttp rather than httpx upstream: httpcore's pool polls every pooled socket on each request
        # (encode/httpcore#928), which at a few hundred requests/s costs more than the rest of the gateway.
        gw.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=gw.settings.upstream_timeout),
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30.0))
        gw.live.warm()
        log.info("gateway started", extra={"upstream": gw.upstream, "log_dir": str(gw.settings.log_dir),
                                           "policy": str(gw.settings.policy), "live": gw.settings.live.enabled})
        try:
            yield
        finally:
            # uvicorn stops accepting, lets in-flight requests finish, then ends the lifespan: flush last.
            await gw.client.close()
            gw.log.flush()
            log.info("gateway stopped", extra={"logged_through": gw.log.flushed_through,
                                               "log_queue": gw.log.pending})

    routes = [Route(f"/v1/{p}", proxy, methods=["POST"]) for p in ("chat/completions", "responses", "completions")]
    routes += [Route("/v1/models", models), Route("/healthz", healthz), Route("/readyz", readyz),
               Route("/metrics", metrics)]
    return Starlette(routes=routes, lifespan=lifespan)


def _log_rejected(gw: Gateway, record: dict[str, Any], rej: _Reject, started: float) -> None:
    record.setdefault("request", {})
    record["response"] = {"status": rej.status, "finish_reason": "rejected", "content": None,
                          "error": {"type": rej.kind, "code": rej.code, "message": rej.message},
                          "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
    gw.record(record)


async def _forward(
    gw: Gateway, request: Request, body: dict[str, Any], record: dict[str, Any], started: float,
    refund: Any, withhold_reasoning: bool = False, processors: list[dict[str, Any]] | None = None,
    canary: Canary | None = None,
) -> Response:
    assert gw.client is not None
    url = f"{gw.upstream}{request.url.path.removeprefix('/v1')}"
    stream = bool(body.get("stream"))
    upstream_body = dict(body)
    # Clients never choose the sampling defence: theirs is dropped, the gateway's (if any) is sent.
    upstream_body.pop("logits_processors", None)
    if processors:
        upstream_body["logits_processors"] = processors
    if stream and request.url.path.endswith("/chat/completions"):
        upstream_body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    headers = {**gw.upstream_headers(), "content-type": "application/json"}
    try:
        resp = await gw.client.post(url, data=orjson.dumps(upstream_body), headers=headers)
        if not stream or resp.status != 200:
            try:
                content = await resp.read()
            finally:
                resp.release()
    except UPSTREAM_ERRORS as exc:
        timed_out = isinstance(exc, TimeoutError)
        rej = _Reject(504 if timed_out else 502, f"upstream {'timed out' if timed_out else 'unavailable'}: {exc!r}",
                      "api_error", "upstream_timeout" if timed_out else "upstream_error")
        _log_rejected(gw, record, rej, started)
        refund(0)
        return rej.response()
    if not stream or resp.status != 200:
        status = resp.status if resp.status < 500 else 502
        _finish(gw, record, _response_fields(content, resp.status, started), refund)
        if resp.status == 200 and (withhold_reasoning or canary):
            content = _rewritten(content, withhold_reasoning, canary)
        return Response(content, status, media_type=resp.headers.get("content-type", "application/json"))
    capture = StreamCapture(include_usage_for_client=bool((body.get("stream_options") or {}).get("include_usage")),
                            withhold_reasoning=withhold_reasoning, canary=canary.text if canary else None)
    return StreamingResponse(_relay(gw, resp, capture, record, started, refund), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _relay(
    gw: Gateway, resp: aiohttp.ClientResponse, capture: StreamCapture, record: dict[str, Any], started: float,
    refund: Any,
) -> AsyncIterator[bytes]:
    """Upstream bytes to the client as they arrive; keep-alives until the first; log in every case."""
    chunks = resp.content.iter_any().__aiter__()
    finished = False
    try:
        first = asyncio.ensure_future(chunks.__anext__())
        while True:
            done, _ = await asyncio.wait({first}, timeout=gw.settings.keepalive_seconds)
            if done:
                break
            yield b": keep-alive\n\n"
        try:
            chunk: bytes | None = first.result()
        except StopAsyncIteration:
            chunk = None
        while chunk is not None:
            out = capture.feed(chunk)
            if out:
                yield out
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                chunk = None
        tail = capture.close()
        if tail:
            yield tail
        finished = True
    finally:
        if finished:
            resp.release()  # the connection goes back to the pool
        else:
            resp.close()  # a client disconnect (or an upstream failure): closing cancels the upstream call
        _finish(gw, record, capture.response_fields(200, round((time.perf_counter() - started) * 1000, 3),
                                                    interrupted=not finished), refund)


def _finish(gw: Gateway, record: dict[str, Any], response: dict[str, Any], refund: Any) -> None:
    """Log the exchange and refund the tokens it did not use (by the upstream's usage, when it gave one)."""
    record["response"] = response
    usage = response.get("usage") or {}
    refund((usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) if usage else None)
    gw.record(record)


def _rewritten(content: bytes, withhold_reasoning: bool, canary: Canary | None) -> bytes:
    """The upstream's answer as the client gets it: reasoning removed, a canary appended (the log keeps the
    upstream's answer and names the canary)."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content
    choices = (data.get("choices") or []) if isinstance(data, dict) else []
    for i, choice in enumerate(choices):
        message = choice.get("message")
        if withhold_reasoning and isinstance(message, dict):
            message.pop("reasoning_content", None)
            message.pop("reasoning", None)
        if canary and i == 0:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                message["content"] += canary.text
            elif isinstance(choice.get("text"), str):
                choice["text"] += canary.text
    return bytes(orjson.dumps(data))


def _response_fields(content: bytes, status: int, started: float) -> dict[str, Any]:
    """The log's ``response`` object from a non-streamed upstream answer."""
    latency = round((time.perf_counter() - started) * 1000, 3)
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"status": status, "finish_reason": None, "content": None, "latency_ms": latency}
    choice = (data.get("choices") or [{}])[0] if isinstance(data, dict) else {}
    message = choice.get("message") or {}
    usage = (data.get("usage") or {}) if isinstance(data, dict) else {}
    details = usage.get("completion_tokens_details") or {}
    fields: dict[str, Any] = {
        "status": status, "finish_reason": choice.get("finish_reason"),
        "content": message.get("content") if message else choice.get("text"),
        "reasoning_content": message.get("reasoning_content"), "tool_calls": message.get("tool_calls") or [],
        "latency_ms": latency,
    }
    if usage:
        fields["usage"] = {"input_tokens": usage.get("prompt_tokens", usage.get("input_tokens")),
                           "output_tokens": usage.get("completion_tokens", usage.get("output_tokens")),
                           "reasoning_tokens": details.get("reasoning_tokens", 0)}
    if isinstance(data, dict) and "error" in data:
        fields["error"] = data["error"]
    return fields
