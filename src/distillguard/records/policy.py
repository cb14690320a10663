"""A policy record: one entry of ``policy.json``, written by ``scan`` (and the lab), loaded by the gateway.

``subject`` is ``account:ID`` or ``cluster:ID``; a cluster's action applies to each of its
``members``. Fields never set are not written: account records have no ``members``, and
scan records no ``transforms`` or ``logits_processors``.

>>> r = PolicyRecord.model_validate({"subject": "cluster:c1", "action": "challenge", "reason": "campaign-0001",
...                                  "expires_at": "2099-01-01T00:00:00+00:00", "members": ["a", "b"]})
>>> r.as_json()["expires_at"], r.transforms
('2099-01-01T00:00:00+00:00', None)
>>> try:
...     PolicyRecord(subject="account:a", action="tarpit")
... except ValueError as exc:
...     print(exc.errors()[0]["msg"])
Value error, must be one of allow, monitor, throttle, challenge, block
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, StrictStr, field_validator

from distillguard.records.base import Instant, Record
from distillguard.schema import ACTIONS

Action = Literal["allow", "monitor", "throttle", "challenge", "block"]
"""What the gateway does with a subject's requests, least strict first (``schema.ACTIONS``)."""
TRANSFORMS = ("withhold_reasoning", "summarize_reasoning")
"""Response transforms a policy record may ask for (``"transforms": [...]``)."""


class LogitsProcessor(Record):
    """A processor the gateway asks the upstream to apply (a watermark, a sampling defence): its ``name`` and
    whatever settings it takes (kept as given)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: StrictStr


class PolicyRecord(Record):
    """One decision: a subject, its action and why, until when."""

    subject: StrictStr = Field(description="account:ID or cluster:ID")
    action: StrictStr = Field(description="least strict first", json_schema_extra={"enum": list(ACTIONS)})
    reason: StrictStr | None = None
    expires_at: Instant | None = Field(None, description="with a time zone; none: never expires")
    members: list[StrictStr] | None = Field(None, description="a cluster's accounts")
    transforms: list[StrictStr] | None = Field(None, description=f"response transforms: {', '.join(TRANSFORMS)}")
    logits_processors: list[LogitsProcessor] | None = None

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        kind, _, ident = value.partition(":")
        if kind not in ("account", "cluster") or not ident.strip():
            raise ValueError("must be 'account:ID' or 'cluster:ID'")
        return value

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in ACTIONS:
            raise ValueError(f"must be one of {', '.join(ACTIONS)}")
        return value

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, value: list[str] | None) -> list[str] | None:
        unknown = [t for t in value or [] if t not in TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown transforms {unknown}; known: {', '.join(TRANSFORMS)}")
        return value
