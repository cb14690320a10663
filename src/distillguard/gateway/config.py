"""Gateway settings: one TOML file (``--config``), each field overridable by a CLI flag.

>>> GatewaySettings(upstream="http://127.0.0.1:8001/v1").limits.account_requests_per_minute
600.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distillguard.config import read_toml, validated
from distillguard.gateway.canary import CanarySettings
from distillguard.gateway.live import LiveSettings


class LimitSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    account_requests_per_minute: float = Field(600.0, gt=0)
    account_tokens_per_minute: float = Field(2_000_000.0, gt=0)
    cluster_requests_per_minute: float = Field(1200.0, gt=0, description="shared by all accounts of a cluster")
    cluster_tokens_per_minute: float = Field(4_000_000.0, gt=0)
    burst_seconds: float = Field(10.0, gt=0, description="bucket capacity, in seconds of the per-minute rate")
    throttle_factor: float = Field(0.1, gt=0, le=1, description="limits of throttled subjects are scaled by this")
    default_max_tokens: int = Field(4096, gt=0, description="reserved when a request sets no max_tokens")
    max_output_tokens: int = Field(131_072, gt=0, description="larger max_tokens (of any endpoint) is a 400")
    max_n: int = Field(128, gt=0, description="larger n (or best_of) is a 400")
    unauthenticated_per_minute: float = Field(
        60.0, gt=0, description="requests without a valid key, per client IP; beyond it they get 429")
    unauthenticated_burst: float = Field(20.0, ge=1, description="bucket capacity of that per-IP limit")


class GatewaySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    upstream: str = Field(description="base URL of the OpenAI-compatible upstream, e.g. http://127.0.0.1:8001/v1")
    upstream_api_key: str | None = Field(None, description="bearer token sent upstream (clients' keys never are)")
    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    log_dir: Path = Path("gateway-log")
    flush_interval: float = Field(0.2, gt=0, description="seconds between log flushes (fsync)")
    keys: Path = Path("distillguard-keys.db")
    policy: Path | None = None
    redis_url: str | None = Field(None, description="redis://host:port/db: limits shared by every replica")
    trusted_hops: int = Field(0, ge=0, description="X-Forwarded-For entries added by proxies you run")
    tls_fingerprint_header: str = "x-tls-fingerprint"
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    upstream_timeout: float = Field(600.0, gt=0)
    keepalive_seconds: float = Field(5.0, gt=0, description="SSE comment interval before the first token")
    limits: LimitSettings = LimitSettings()
    live: LiveSettings = LiveSettings()
    canaries: CanarySettings = CanarySettings()
    logits_processors: list[dict[str, Any]] = Field(
        [], description="sent upstream with every request (e.g. a watermark), before the policy's own")
    log_format: Literal["text", "json"] = Field("text", description="the gateway's own logs: text or JSON lines")
    log_failure: Literal["reject", "serve"] = Field(
        "reject", description="when the exchange log cannot be written: answer 503 (reject) or serve unlogged")
    log_stall_seconds: float = Field(10.0, gt=0, description="queued records this old make the log unhealthy")
    limits_failure: Literal["closed", "open"] = Field(
        "closed", description="when Redis is down: refuse requests (closed, 503) or serve them unlimited (open)")
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="all request headers together (server limit)")
    max_header_value_bytes: int = Field(8 * 1024, ge=256, description="one header value; larger is a 431")
    max_logged_chars: int = Field(512, ge=64, description="client fields (user agent, ...) are cut to this in the log")
    http_parser: Literal["h11", "httptools"] = Field(
        "httptools", description="both cap the request head (max_header_bytes); httptools costs a third less CPU")
    workers: int = Field(1, ge=1, le=256, description="worker processes on one port (more than 1 needs redis_url)")
    header_timeout: float = Field(10.0, gt=0, description="seconds a connection may take to send its headers")
    body_timeout: float = Field(30.0, gt=0, description="seconds a request may take to send its body")
    upstream_probe_seconds: float = Field(5.0, gt=0, description="how often readiness checks the upstream")
    upstream_idle_seconds: float = Field(
        4.0, gt=0, description="an idle upstream connection is reused this long at most: keep it below the upstream's "
        "keep-alive timeout (uvicorn's and vLLM's: 5 s), or a request sent as the upstream closes one fails (502)")

    @model_validator(mode="after")
    def _shared_limits(self) -> GatewaySettings:
        # Each worker's in-memory buckets would grant the whole budget again: only Redis makes them one.
        if self.workers > 1 and not self.redis_url:
            raise ValueError(f"workers = {self.workers} needs redis_url: the rate limits must be shared by the workers")
        return self


def load_gateway_settings(path: Path | None, **overrides: object) -> GatewaySettings:
    """Settings from ``path`` (TOML) with non-None ``overrides`` applied on top."""
    data = read_toml(path, "gateway config") if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validated(GatewaySettings, data, "gateway settings")
