"""A campaign record: one entry of ``campaigns.json``, as the report, the STIX export and analysts read it.

The fields the exchange-log spec's scan output contract names are required; the rest
(infrastructure, graph, timeline, ...) came later and default to empty, so older files still read.

>>> c = Campaign.model_validate({"campaign_id": "campaign-0001", "account_ids": ["a", "b"], "exchange_count": 200,
...     "score": 0.9, "capabilities": {"coding": 1.0}, "first_seen": "2026-02-02T00:00:00+00:00",
...     "last_seen": "2026-02-04T00:00:00+00:00", "evidence": ["2 linked accounts ..."]})
>>> c.last_seen - c.first_seen, c.infrastructure
(datetime.timedelta(days=2), [])
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from distillguard.records.base import Instant, Record

Share = Annotated[float, Field(ge=0, le=1)]
"""A share in [0, 1] (rounded to 4 digits)."""


class SharedValue(Record):
    """A network value or payment fingerprint that two or more members of a campaign used."""

    kind: Literal["ip", "asn", "user_agent", "tls", "payment"]
    value: str = Field(description="the value itself; payment fingerprints in the clear (hashed only in STIX)")
    accounts: int = Field(description="members that used it")
    exchanges: int | None = Field(None, description="exchanges that carried it (none for payment fingerprints)")
    first_seen: str = Field(description="UTC, to the second: 2026-02-02T00:00:00Z")
    last_seen: str


class ReleasePivot(Record):
    """The model release after which the largest share of the campaign's traffic moved to the new model."""

    model: str
    released_at: str = Field(description="UTC, to the second: 2026-02-02T00:00:00Z")
    share_24h: Share = Field(description="share of its traffic in the 24 h after the release that went to it")
    exchanges_24h: int


class HarvestScore(Record):
    """The cluster's harvest evidence (``detect.harvest``): combined score and each term's share."""

    score: float
    shares: dict[str, float]


class CampaignGraph(Record):
    """The links among the members (``account_links`` within the campaign)."""

    accounts: int
    links: int
    density: float = Field(description="share of member pairs directly linked")
    mean_weight: float = Field(description="mean rarity-weighted evidence weight of the links")
    edges: list[tuple[str, str, float, list[str]]] = Field(description="[source, target, weight, evidence kinds]")


class Campaign(Record):
    """One campaign: its accounts, traffic, score and the evidence behind it."""

    campaign_id: str
    cluster_id: str | None = Field(None, description="the link cluster the campaign was found in")
    account_ids: list[str]
    exchange_count: int
    score: float = Field(ge=0, le=1, description="suspicious share × (0.4 + 0.2·size + 0.2·density + 0.2·evidence)")
    capabilities: dict[str, Share] = Field(description="share of exchanges per capability area, largest first")
    first_seen: Instant
    last_seen: Instant
    evidence: list[str] = Field(description="human-readable findings, with numbers")
    shared_evidence: dict[str, int] = Field(default_factory=dict, description="members per link evidence kind")
    suspicious_share: Share | None = Field(None, description="share of members above the member bar")
    harvest_evidence: HarvestScore | None = None
    coordinated: bool = Field(False, description="a campaign by harvest evidence and links alone")
    member_score_mean: float | None = None
    volume_cv: float | None = Field(None, description="coefficient of variation of exchanges per member")
    graph: CampaignGraph | None = None
    infrastructure: list[SharedValue] = Field(default_factory=list)
    timeline: list[tuple[str, int]] = Field(default_factory=list, description="[hour (UTC), exchanges], in time order")
    release_pivot: ReleasePivot | None = None
