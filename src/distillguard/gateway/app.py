"""The gateway's ASGI app: authenticate, check, decide, limit, forward, log.

Per request: oversized headers are a 431; the API key maps to an account
(401 otherwise, and 429 once a client IP has spent its allowance of requests
without a valid key); the body is read within ``body_timeout`` and checked
against the endpoint's API (``validate``: 400 naming the field, nothing
coerced); when the exchange log cannot be written the gateway answers 503
(``log_failure = "reject"``, the default) rather than serve unlogged; the
policy gives the account's (or its cluster's) action (``block`` and
``challenge`` answer 403 with an opaque reference, the reason stays in the
log; ``throttle`` tightens the limits, ``monitor`` flags the log record); the
rate limiter reserves one request and prompt + n × max output tokens for the
account and its cluster (429 with ``Retry-After`` otherwise); the request goes
upstream and the answer comes back checked (``upstream``); and one record in
the exchange-log format goes to the segment log, for every request that
reached a handler, rejected, failed or interrupted (``exchange``). Errors use
the OpenAI error shape and never carry upstream texts or internal addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from distillguard.gateway.canary import CanaryMaker
from distillguard.gateway.config import GatewaySettings
from distillguard.gateway.exchange import Exchange
from distillguard.gateway.keys import KeyRecord, KeyStore
from distillguard.gateway.limits import Limit, Limiter, LimiterUnavailable, MemoryLimiter, RedisLimiter
from distillguard.gateway.live import LiveSignals, LiveView
from distillguard.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from distillguard.gateway.policy import STRICTNESS, Decision, Policy
from distillguard.gateway.reject import Reject
from distillguard.gateway.segments import SegmentLog
from distillguard.gateway.upstream import UPSTREAM_ERRORS, Call, forward, upstream_failure
from distillguard.gateway.validate import CHAT, COMPLETIONS, RESPONSES, check_request

log = logging.getLogger(__name__)
_IP_CHARS = 64  # longer than any IPv6 address with a zone


class Gateway:
    """State shared by the routes: settings, keys, policy, limiter, log, upstream client."""

    def __init__(self, settings: GatewaySettings, keys: KeyStore, policy: Policy, log_: SegmentLog,
                 limiter: Limiter | None = None, live: LiveView | None = None) -> None:
        self.settings, self.keys, self.policy, self.log = settings, keys, policy, log_
        self.limiter: Limiter = limiter or (RedisLimiter(settings.redis_url) if settings.redis_url
                                            else MemoryLimiter())
        self.metrics = GatewayMetrics()
        self.upstream = settings.upstream.rstrip("/")
        self.client: aiohttp.ClientSession | None = None
        # ``distillguard gateway`` passes a client of its live process; alone, the signals run on a thread here.
        self.live: LiveView = live or LiveSignals(settings.live)
        self.canaries = CanaryMaker(settings.canaries)
        self.upstream_ok: bool | None = None  # the background probe's last answer (None: not probed yet)
        self._policy_loads = policy.loads

    def decide(self, account: str, cluster: str | None) -> Decision:
        """The policy's decision, made stricter by a live flag the current policy has not ruled on.

        A live flag lasts until the next policy file (the next scan) is loaded; an explicit
        policy record for the account or its cluster always wins over it.
        """
        decision = self.policy.decide(account, cluster)
        if self.policy.loads != self._policy_loads:
            self._policy_loads = self.policy.loads
            self.live.reset(self.policy.version)
        flag = self.live.flag(account)
        if flag and decision.subject is None and STRICTNESS[flag.action] > STRICTNESS[decision.action]:
            return Decision(flag.action, flag.reason, "live", None, decision.transforms, decision.logits_processors)
        return decision

    def record(self, record: dict[str, Any]) -> None:
        """The end of every exchange: one log record, and the metrics counted from it."""
        try:
            self.log.append(record)
        except TypeError:  # cannot happen for parsed JSON; if it does, the exchange is still logged
            log.exception("exchange %s not serializable; logged without its request", record.get("exchange_id"))
            record["request"] = {}
            record.setdefault("truncated", []).append({"field": "request", "reason": "not serializable"})
            self.log.append(record)
        self.metrics.observe(record)

    # -- request context ----------------------------------------------------

    def _capped(self, record: dict[str, Any], field: str, value: str | None, limit: int) -> str | None:
        """``value`` cut to ``limit`` characters; the cut is marked in the record's ``truncated`` list."""
        if value is None or len(value) <= limit:
            return value
        record.setdefault("truncated", []).append({"field": field, "length": len(value)})
        return value[:limit] + "…"

    def client_info(self, request: Request, record: dict[str, Any]) -> dict[str, Any]:
        """The client fields of the log record (each capped). The IP is the peer's, or with ``trusted_hops``
        proxies of yours in front, the X-Forwarded-For entry they added."""
        peer = request.client.host if request.client else None
        n = self.settings.trusted_hops
        ip = peer
        if n:
            hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
            chain = [*hops, peer] if peer else hops
            ip = chain[-(n + 1)] if len(chain) > n else (chain[0] if chain else None)
        cap = self.settings.max_logged_chars
        return {"ip": self._capped(record, "client.ip", ip, _IP_CHARS),
                "user_agent": self._capped(record, "client.user_agent", request.headers.get("user-agent"), cap),
                "tls_fingerprint": self._capped(record, "client.tls_fingerprint",
                                                request.headers.get(self.settings.tls_fingerprint_header), cap)}

    def check_headers(self, request: Request) -> None:
        limit = self.settings.max_header_value_bytes
        for name, value in request.headers.raw:
            if len(value) > limit:
                raise Reject(431, f"A request header is larger than {limit} bytes.", "invalid_request_error",
                             "header_too_large", param=name[:64].decode("latin-1"))

    def authenticate(self, request: Request, ip: str | None) -> KeyRecord:
        """The key's record; 401 without a valid one (429 when the client IP has made too many such calls)."""
        auth = request.headers.get("authorization", "")
        secret = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        record = self.keys.lookup(secret) if secret else None
        if record is not None:
            return record
        s = self.settings.limits
        rule = Limit(s.unauthenticated_per_minute, s.unauthenticated_burst)
        try:
            grant = self.limiter.reserve([(f"req:ip:{_address_group(ip)}", rule, 1.0)])
        except LimiterUnavailable:
            grant = None
        if grant is not None and not grant.ok:
            raise Reject(429, "Too many requests without a valid API key.", "rate_limit_error",
                         "rate_limit_exceeded", headers={"retry-after": str(max(1, int(grant.retry_after + 0.999)))})
        if not secret:
            raise Reject(401, "You didn't provide an API key (Authorization: Bearer ...).",
                         "invalid_request_error", "missing_api_key")
        raise Reject(401, "Incorrect API key provided, or the key was revoked.", "invalid_request_error",
                     "invalid_api_key")

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

    def start(self, request: Request) -> Exchange:
        """A new exchange for ``request``: its record (id, time, client, endpoint), logged through this gateway."""
        record: dict[str, Any] = {"exchange_id": f"gx-{uuid.uuid4().hex}", "timestamp": datetime.now(UTC).isoformat(),
                                  "account_id": "unauthenticated", "endpoint": request.scope["path"]}
        record["client"] = self.client_info(request, record)
        return Exchange(record, self.record)

    def admit(self, request: Request, ex: Exchange) -> tuple[KeyRecord, Decision, str | None]:
        """Headers, key and policy: the account's decision, or a ``Reject`` (403 opaque for block/challenge)."""
        key = self.authenticate(request, ex.record["client"]["ip"])  # first: floods without a key are limited
        self.check_headers(request)
        record = ex.record
        record.update(account_id=key.account_id, api_key_id=key.key_id)
        if key.organization:
            record["organization"] = key.organization
        cluster = self.policy.cluster_of(key.account_id)
        decision = self.decide(key.account_id, cluster)
        record["gateway"] = {"action": decision.action, "policy_subject": decision.subject, "cluster_id": cluster,
                             "transforms": list(decision.transforms)}
        if decision.action != "allow" and decision.reason:
            record["gateway"]["reason"] = decision.reason
        return key, decision, cluster


def _address_group(ip: str | None) -> str:
    """What one client controls: an IPv4 address, or an IPv6 /64 (a host gets a whole /64 to rotate in).

    >>> _address_group("2001:db8:1:2:aaaa::1"), _address_group("203.0.113.7")
    ('2001:db8:1:2::/64', '203.0.113.7')
    """
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return str(ip)
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if address.version == 6 else str(address)


def _decision_reject(decision: Decision, reference: str) -> Reject | None:
    """403 for block and challenge: a reference the operator finds in the log, nothing of why."""
    if decision.action == "block":
        return Reject(403, f"This account cannot use the API. Reference: {reference}.", "permission_error",
                      "account_blocked")
    if decision.action == "challenge":
        return Reject(403, f"Additional verification is required before this account can continue. "
                           f"Reference: {reference}.", "permission_error", "verification_required",
                      extra={"verification": {"required": True, "reference": reference}})
    return None


def _estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A cheap upper-ish estimate (4 characters a token) for the reservation; settled by usage after."""
    return max(1, len(orjson.dumps(body.get("messages") or body.get("input") or body.get("prompt") or "")) // 4)


async def _read_json(request: Request, limit: int, timeout: float) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and as received."""
    size = 0
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Reject(413, f"Request body larger than {limit} bytes.", "invalid_request_error",
                                 "request_too_large")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise Reject(408, f"The request body did not arrive within {timeout:g} s.", "invalid_request_error",
                     "request_timeout") from exc
    raw = b"".join(chunks)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reject(400, "We could not parse the JSON body of your request.", "invalid_request_error",
                     "invalid_json") from exc
    if not isinstance(body, dict):
        raise Reject(400, "The request body must be a JSON object.", "invalid_request_error", "invalid_json")
    try:  # what the parser took, the log must write (orjson writes at most 254 levels): else served unlogged
        orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise Reject(400, "The JSON body is nested too deeply.", "invalid_request_error", "invalid_json") from exc
    return body, raw


def _log_unavailable() -> Reject:
    return Reject(503, "The service is temporarily unavailable; retry later.", "api_error", "service_unavailable",
                  headers={"retry-after": "5"})


async def _proxy(gw: Gateway, request: Request, ex: Exchange) -> Response:
    record = ex.record
    try:
        key, decision, cluster = gw.admit(request, ex)
        body, raw = await _read_json(request, gw.settings.max_body_bytes, gw.settings.body_timeout)
        record["request"] = body
        endpoint = request.scope["path"]  # the same as request.url.path, without building a URL
        checked = check_request(endpoint, body, max_output_tokens=gw.settings.limits.max_output_tokens,
                                max_n=gw.settings.limits.max_n)
        if not gw.log.healthy and gw.settings.log_failure == "reject":
            raise _log_unavailable()
        processors = (*gw.settings.logits_processors, *decision.logits_processors)
        if processors:
            record["gateway"]["logits_processors"] = list(processors)
        gw.live.observe(key.account_id, body, raw=raw)
        canary = None if endpoint == RESPONSES else gw.canaries.for_exchange(decision.action, record["exchange_id"])
        if canary:
            record["gateway"]["canary"] = canary.to_json()
        reject = _decision_reject(decision, record["exchange_id"])
        if reject:
            raise reject
        _reserve(gw, ex, key.account_id, cluster, decision, checked.choices * (
            checked.max_output or gw.settings.limits.default_max_tokens) + _estimate_prompt_tokens(body))
    except Reject as rej:
        ex.reject(rej)
        return _with_id(rej.response(), ex)
    except ClientDisconnect:
        ex.reject(Reject(499, "client closed the request", "client_error", "client_disconnected"))
        return Response(status_code=499)
    call = Call(endpoint, body, checked.stream, "withhold_reasoning" in decision.transforms, processors, canary,
                summarize_reasoning="summarize_reasoning" in decision.transforms)
    return _with_id(await forward(gw, call, ex), ex)


def _reserve(gw: Gateway, ex: Exchange, account: str, cluster: str | None, decision: Decision, tokens: int) -> None:
    requests, token_rules = gw.limits_for(account, cluster, decision.action == "throttle")
    try:
        grant = gw.limiter.reserve(requests + [(k, lim, float(tokens)) for k, lim in token_rules])
    except LimiterUnavailable as exc:
        ex.record["gateway"]["limits"] = f"unavailable, failed {gw.settings.limits_failure}"
        if gw.settings.limits_failure == "closed":
            raise Reject(503, "The service is temporarily unavailable; retry later.", "api_error",
                         "service_unavailable", headers={"retry-after": "5"}, detail=str(exc)) from exc
        log.warning("rate limits unavailable, serving without them: %s", exc)
        return
    if not grant.ok:
        wait = grant.retry_after
        if wait == float("inf"):
            raise Reject(400, "max_tokens × n is larger than this account's token budget allows.",
                         "invalid_request_error", "max_tokens_too_large")
        raise Reject(429, f"Rate limit reached; retry in {wait:.1f} s.", "rate_limit_error", "rate_limit_exceeded",
                     headers={"retry-after": str(max(1, int(wait + 0.999)))})
    ex.reserve(gw.limiter, token_rules, tokens)


def _with_id(response: Response, ex: Exchange) -> Response:
    response.headers["x-request-id"] = ex.record["exchange_id"]  # the log record of this exchange
    return response


def create_app(gw: Gateway) -> Starlette:
    async def proxy(request: Request) -> Response:
        ex: Exchange | None = None
        try:
            ex = gw.start(request)
            return await _proxy(gw, request, ex)
        except asyncio.CancelledError:  # the server shutting down mid-request: logged all the same
            if ex is not None:
                ex.reject(Reject(499, "request cancelled", "client_error", "cancelled"), used=None)
            raise
        except Exception as exc:  # a bug: still one log record, the reservation refunded, nothing internal said
            log.exception("request to %s failed", request.url.path)
            rej = Reject(500, "The server had an error processing your request.", "api_error", "internal_error",
                         detail=repr(exc)[:500])
            if ex is None:
                return rej.response()
            ex.reject(rej)
            return _with_id(rej.response(), ex)

    async def models(request: Request) -> Response:
        ex = gw.start(request)
        try:
            _, decision, _ = gw.admit(request, ex)
            reject = _decision_reject(decision, ex.record["exchange_id"])
            if reject:
                raise reject
        except Reject as rej:
            ex.reject(rej)
            return _with_id(rej.response(), ex)
        assert gw.client is not None
        try:  # a listing served is not logged (it is no exchange with a model); a refused one is
            async with gw.client.get(f"{gw.upstream}/models", headers=gw.upstream_headers()) as upstream:
                content, status = await upstream.read(), upstream.status
        except UPSTREAM_ERRORS as exc:
            return upstream_failure(exc).response()
        try:
            readable = status == 200 and isinstance(orjson.loads(content), dict)
        except orjson.JSONDecodeError:
            readable = False
        if not readable:
            return Reject(502, "The model server failed to answer.", "api_error", "upstream_error").response()
        return Response(content, 200, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return Response(gw.metrics.render(gw.log.pending, live_flagged=gw.live.flagged, live_dropped=gw.live.dropped,
                                          log_healthy=gw.log.healthy,
                                          log_write_errors=gw.log.write_errors,
                                          policy_bad_records=len(gw.policy.errors), policy_records=gw.policy.records,
                                          policy_expired_records=gw.policy.expired()), media_type=CONTENT_TYPE)

    async def readyz(_: Request) -> Response:
        """Ready when the log is writable, the live signals are warm and the last upstream probe answered
        (the probe runs in the background: this route never calls the upstream)."""
        checks = [(gw.log.healthy, "log unavailable"), (bool(gw.upstream_ok), "upstream unavailable"),
                  (gw.live.ready.is_set(), "warming up")]
        failing = [why for ok, why in checks if not ok]
        return JSONResponse({"status": failing[0] if failing else "ready", "log_queue": gw.log.pending},
                            503 if failing else 200)

    async def probe() -> None:
        assert gw.client is not None
        try:
            async with gw.client.get(f"{gw.upstream}/models", headers=gw.upstream_headers(),
                                     timeout=aiohttp.ClientTimeout(total=2.0)) as r:
                gw.upstream_ok = r.status < 500
        except UPSTREAM_ERRORS:
            gw.upstream_ok = False

    async def probe_loop() -> None:
        while True:
            await asyncio.sleep(gw.settings.upstream_probe_seconds)
            await probe()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # aiohttp rather than httpx upstream: httpcore's pool polls every pooled socket on each request
        # (encode/httpcore#928), which at a few hundred requests/s costs more than the rest of the gateway.
        gw.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=gw.settings.upstream_timeout),
            # A pooled connection the upstream is closing as it is reused resets the request sent on it (a 502):
            # reuse only those idle for less than the upstream keeps them (uvicorn's 5 s; requests about that far
            # apart, and the readiness probe every 5 s, reuse connections of about that age).
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0,
                                           keepalive_timeout=gw.settings.upstream_idle_seconds))
        gw.live.warm()
        await probe()
        prober = asyncio.create_task(probe_loop())
        gw.metrics.pauses.install()
        gw.metrics.pauses.start_lag_probe()
        log.info("gateway started", extra={"upstream": gw.upstream, "log_dir": str(gw.settings.log_dir),
                                           "policy": str(gw.settings.policy), "live": gw.settings.live.enabled})
        try:
            yield
        finally:
            # uvicorn stops accepting, lets in-flight requests finish, then ends the lifespan: flush last.
            prober.cancel()
            gw.metrics.pauses.uninstall()
            gw.live.close()
            await gw.client.close()
            gw.log.flush()
            log.info("gateway stopped", extra={"logged_through": gw.log.flushed_through,
                                               "log_queue": gw.log.pending})

    routes = [Route(p, proxy, methods=["POST"]) for p in (CHAT, RESPONSES, COMPLETIONS)]
    routes += [Route("/v1/models", models), Route("/healthz", healthz), Route("/readyz", readyz),
               Route("/metrics", metrics)]
    return Starlette(routes=routes, lifespan=lifespan)
