"""Find campaigns: member bars → gates → details → records, and members flagged.

One call per scan (and per vetting round, and per replay window); ``find_campaigns`` is
what the pipeline, the vetting of a reference and replay all go through.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.config import Settings
from distillguard.decide.campaign_records import build_campaigns
from distillguard.decide.details import campaign_details
from distillguard.decide.gates import MIN_JUDGED_EXCHANGES, select_campaigns
from distillguard.decide.members import account_view, flag_campaign_members, flag_harvesters
from distillguard.decide.traffic import TrafficOf
from distillguard.detect.harvest import campaign_evidence, harvest_carriers, trace_harvesters
from distillguard.records import Campaign
from distillguard.store import Store


class MemberBars(Protocol):
    """What the gates ask of a fitted detector (``detect.Calibrated``, ``detect.Either``)."""

    def above(self, features: pa.Table, fpr: float, /) -> np.ndarray: ...


class FoundCampaigns(NamedTuple):
    """What ``find_campaigns`` returns (unpacks as ``scores, campaigns, view``)."""

    scores: pa.Table  # the scores, campaign members flagged (``schema.ACCOUNT_SCORES``)
    campaigns: list[Campaign]  # highest score first
    view: pa.Table  # ``members.account_view``, members flagged: the published account rows


def find_campaigns(
    scores: pa.Table, clusters: pa.Table, *, features: pa.Table, det: MemberBars, settings: Settings,
    store: Store | None = None, cleared: frozenset[str] = frozenset(), edges: pa.Table | None = None,
    since: datetime | None = None, traffic: TrafficOf | None = None,
) -> FoundCampaigns:
    """Campaigns from clusters; returns the scores with members flagged, the campaigns and the account view.

    A cluster is a campaign when most members score above the member bar and its harvest
    evidence reaches ``link.min_harvest_evidence`` (or above the looser bar, with stronger
    evidence: ``link.loose_*``), or when it is large and its harvest
    evidence alone is strong (``link.coordinated_*``). Cleared accounts are never members.
    With ``store`` and ``traffic`` (how to sum some accounts' signals, ``decide.traffic``), each
    campaign record carries its details (infrastructure, timeline, links, release pivot) from the
    traffic since ``since`` (the scan's window); replay leaves them out. With ``edges``
    (``schema.ACCOUNT_LINKS``), passengers are found along the links (``gates._passengers``). Accounts
    above the member bar whose own traffic is a trace harvest (``detect.harvest.trace_harvesters``) are
    flagged on their own, linked or not; members whose own traffic and volume carry harvest evidence
    (``detect.harvest.harvest_carriers``) are never passengers.
    """
    if cleared:
        clusters = clusters.set_column(
            clusters.schema.get_field_index("cluster_id"), "cluster_id",
            pc.if_else(pc.is_in(clusters.column("account_id"), pa.array(sorted(cleared), pa.string())),
                       pa.scalar(None, pa.string()), clusters.column("cluster_id")))
    link = settings.link
    ids = features.column("account_id").to_pylist()
    suspicious = {a for a, s in zip(ids, det.above(features, link.member_fpr), strict=True) if s}
    harvesters = {a: ev for a, ev in trace_harvesters(
        features, bar=settings.detect.trace_harvest_evidence,
        min_exchanges=settings.detect.trace_harvest_min_exchanges).items() if a in suspicious and a not in cleared}
    scores = flag_harvesters(scores, harvesters)
    view = account_view(scores, clusters, features)
    unusual = {a for a, s in zip(ids, det.above(features, link.loose_member_fpr), strict=True) if s}
    candidates = select_campaigns(view, min_accounts=link.min_campaign_accounts,
                                  min_suspicious_share=link.min_suspicious_share,
                                  suspicious=suspicious, unusual=unusual,
                                  evidence=campaign_evidence(features, clusters),
                                  min_harvest=link.min_harvest_evidence,
                                  loose_min_harvest=link.loose_min_harvest_evidence,
                                  loose_min_accounts=link.loose_min_accounts,
                                  coordinated_harvest=link.coordinated_harvest_evidence,
                                  coordinated_accounts=link.coordinated_min_accounts, edges=edges,
                                  carriers=harvest_carriers(features, bar=link.min_harvest_evidence,
                                                            min_exchanges=MIN_JUDGED_EXCHANGES) - cleared)
    details = (campaign_details(store, candidates, traffic=traffic, since=since)
               if store is not None and traffic is not None else {})
    campaigns = build_campaigns(candidates, details)
    return FoundCampaigns(flag_campaign_members(scores, campaigns), campaigns, flag_campaign_members(view, campaigns))
