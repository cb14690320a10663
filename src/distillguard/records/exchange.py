"""One line of the exchange log as the gateway writes it (``gateway/app.py``, ``gateway/exchange.py``).

The row shape is the exchange-log spec's (``shared/spec/exchange-log.md``); this model adds
what the gateway records about its own handling (``gateway``, ``truncated``, ``endpoint``).
Unknown fields are kept, never rejected, as the spec asks. The gateway writes plain dicts on
its hot path (building a model per request would cost more than its latency budget allows);
tests validate what it writes against this model.

>>> r = ExchangeLogRecord.model_validate({"exchange_id": "gx-1", "timestamp": "2026-02-01T12:00:00+00:00",
...     "account_id": "acct-1", "request": {}, "response": {"status": 401, "finish_reason": "rejected",
...     "content": None, "latency_ms": 0.2, "error": {"type": "invalid_request_error", "code": "missing_api_key"}}})
>>> r.response.status if r.response else None
401
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from distillguard.records.base import Instant, Record
from distillguard.records.policy import Action, LogitsProcessor

_OPEN = ConfigDict(frozen=True, extra="allow")  # the spec: unknown fields are kept


class Client(Record):
    """Where the request came from (each text capped by the gateway; cuts are listed in ``truncated``)."""

    model_config = _OPEN
    ip: str | None = None
    asn: int | None = None
    country: str | None = None
    user_agent: str | None = None
    tls_fingerprint: str | None = None


class Usage(Record):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    reasoning_tokens: int = Field(0, ge=0)


class LoggedError(Record):
    """Why a request was refused or failed (with the detail the client did not see)."""

    model_config = _OPEN
    type: str
    code: str | None = None
    message: str | None = None
    param: str | None = None
    detail: str | None = None


class LoggedResponse(Record):
    """What went back to the client: ``status`` is the HTTP status it got."""

    model_config = _OPEN
    status: int
    finish_reason: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage | None = None
    latency_ms: float | None = None
    interrupted: bool | None = Field(None, description="a stream cut short (streams only)")
    error: LoggedError | None = None


class Canary(Record):
    """A canary the gateway added to the answer (``gateway.canary``)."""

    id: str
    text: str
    marker: str


class GatewayNote(Record):
    """The gateway's own handling of the exchange: the policy decision and what it did about it."""

    model_config = _OPEN
    action: Action
    policy_subject: str | None = Field(None, description="the record that decided (account:ID, cluster:ID, live)")
    cluster_id: str | None = None
    transforms: list[str] = Field(default_factory=list)
    reason: str | None = None
    logits_processors: list[LogitsProcessor] | None = None
    canary: Canary | None = None
    limits: str | None = Field(None, description="set when the rate limiter was unavailable")
    upstream_status: int | None = Field(None, description="the upstream's status when it answered with an error")
    charged_beyond_reservation: int | None = Field(None, description="tokens used beyond the reservation")


class Truncation(Record):
    """A field the gateway cut (``length``: its length before) or left out (``reason``)."""

    field: str
    length: int | None = None
    reason: str | None = None


class ExchangeLogRecord(Record):
    """One exchange: identifiers, client, the request verbatim (``{}`` when unreadable) and the response."""

    model_config = _OPEN
    exchange_id: str
    timestamp: Instant
    account_id: str = Field(description="'unauthenticated' when the request had no valid key")
    api_key_id: str | None = None
    organization: str | None = None
    endpoint: str | None = Field(None, description="the API path: /v1/chat/completions, /v1/responses, ...")
    client: Client | None = None
    request: dict[str, Any]
    response: LoggedResponse | None = None
    gateway: GatewayNote | None = None
    truncated: list[Truncation] | None = None
    conversation_id: str | None = None
