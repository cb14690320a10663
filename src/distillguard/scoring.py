"""Scoring on untrusted history: the reference is vetted, coordinated accounts never vouch.

A provider's only reference is last period's traffic as it was, and campaigns run for
months, so the reference holds attackers; without any reference the scanned population is
its own. Both cases go through one procedure (``self_scan``):

1. Every account carries its link cluster (``neighbour_group``): in nearest-neighbour
   novelty a cluster counts as one neighbour and an account is never compared with its own
   cluster, so a hydra cluster's members cannot vouch for each other.
2. Accounts whose own traffic is a trace harvest (reasoning elicited around the clock over
   enough exchanges, own harvest evidence of ``detect.trace_vouch_evidence``:
   ``detect.harvest.trace_harvesters``) are set aside from the start: a campaign on fresh
   infrastructure links to nothing, and its members, each the others' nearest neighbour,
   would vouch for each other whatever the grouping.
3. Score, find campaigns (novel clusters with harvest evidence, or large clusters whose
   harvest evidence is strong on its own: ``detect.harvest``), and **set aside** campaign
   members and flagged accounts; refit on what is left (``detect.vetting_rounds`` times).

With a reference, ``self_scan`` runs on the reference first, and the scan is fitted and
calibrated on the accounts it kept (``vet_reference``); without one, the scanned population
is vetted the same way and is its own reference. Accounts an analyst cleared
(``scan --benign``) are never set aside and are their own benign neighbours, so they are
not flagged again unless their behaviour changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.config import Settings
from distillguard.decide import HARVEST_REASON, find_campaigns, harvest_reason, member_reason
from distillguard.detect import Calibrated, make_scorer
from distillguard.detect.base import GROUP_COLUMN, Slices
from distillguard.detect.either import Either
from distillguard.detect.harvest import campaign_evidence, trace_harvesters

Detector = Calibrated | Either
"""A fitted detector: one calibrated scorer, or the union of several."""


@dataclass(frozen=True)
class SetAside:
    """Accounts left out of the reference, each with why (``summary.json``: ``reference_set_aside``)."""

    reasons: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """How many accounts for each kind of reason ("campaign member", "harvest evidence", "flagged")."""
        out: dict[str, int] = {}
        for why in self.reasons.values():
            kind = ("campaign member" if why.startswith("member of") else
                    HARVEST_REASON if why.startswith(HARVEST_REASON) else "flagged")
            out[kind] = out.get(kind, 0) + 1
        return out


@dataclass(frozen=True)
class Reference:
    """A reference period, prepared like the scan: account features, clusters and slices."""

    features: pa.Table
    clusters: pa.Table | None = None
    slices: Slices | None = None
    windows: pa.Table | None = None
    set_aside: SetAside | None = None  # already vetted (``vet_reference``); None: vet when scoring
    groups: dict[str, str] | None = None  # account → linked component (``link.components``); None: clusters


@dataclass(frozen=True)
class Scoring:
    """Scores of the scanned accounts, the fitted detector and what the reference set aside."""

    scores: pa.Table
    det: Detector
    set_aside: SetAside
    reference_accounts: int
    features: pa.Table  # the scored features, with ``neighbour_group``: what campaign decisions must use


def score_population(
    features: pa.Table, clusters: pa.Table, *, settings: Settings, reference: Reference | None = None,
    cleared: frozenset[str] = frozenset(), groups: dict[str, str] | None = None,
) -> Scoring:
    """Score ``features`` against a vetted ``reference`` (or, without one, against itself, vetted).

    ``groups``: account → neighbour group (the linked component, ``link.components``);
    by default its cluster.
    """
    feats = with_groups(features, clusters if groups is None else groups, "")
    if reference is None:
        own, aside = self_scan(feats, clusters, settings=settings, cleared=cleared)
        return Scoring(score_accounts(own, feats), own, aside, len(own.reference_scores_), feats)
    ref = with_groups(reference.features, reference.groups or reference.clusters, "ref:")
    aside = reference.set_aside if reference.set_aside is not None else vet_reference(reference, settings, cleared)
    kept = _without(ref, set(aside.reasons))
    library = _with_cleared(kept, feats, cleared)
    fitted = _calibrated(settings, has_reference=True).fit(library, slices=reference.slices)
    det: Detector = fitted
    if settings.detect.self_check:
        # The reference may vouch for a campaign the vetting missed (it ran last period too): the
        # population vetted against itself has no such twin, so either view can flag.
        # It speaks only for accounts whose group shows harvest evidence: a campaign harvests, while
        # a small legitimate population linked into groups (an enterprise's batch keys, eval
        # harnesses) has no twin outside its own group and would be flagged for being itself.
        det = Either([fitted, self_scan(feats, clusters, settings=settings, cleared=cleared)[0]],
                     only=[None, harvesting_accounts(feats, settings.link.min_harvest_evidence)])
    return Scoring(score_accounts(det, feats), det, aside, kept.num_rows, feats)


def harvesting_accounts(features: pa.Table, bar: float) -> frozenset[str]:
    """Accounts whose neighbour group (the account alone when unlinked) has harvest evidence of ``bar``.

    >>> f = pa.table({"account_id": ["a", "b"], "n_exchanges": [10, 10], "elicitation_rate": [0.9, 0.0],
    ...               "harvest_format_share": [0.9, 0.0], GROUP_COLUMN: [None, None]})
    >>> sorted(harvesting_accounts(f, 0.45))
    ['a']
    """
    ids = features.column("account_id").to_pylist()
    groups = features.column(GROUP_COLUMN).to_pylist() if GROUP_COLUMN in features.column_names else [None] * len(ids)
    keyed = pa.table({"account_id": ids, "cluster_id": [g or f"solo:{a}" for a, g in zip(ids, groups, strict=True)]})
    evidence = campaign_evidence(features, keyed)
    # No one has checked here whether members look unusual (``HarvestEvidence.alone``).
    return frozenset(a for a, g in zip(ids, keyed.column("cluster_id").to_pylist(), strict=True)
                     if evidence[g].alone.score >= bar)


def vet_reference(reference: Reference, settings: Settings, cleared: frozenset[str] = frozenset()) -> SetAside:
    """What a reference period sets aside before it is used (nothing with ``detect.vet_reference`` off)."""
    if not settings.detect.vet_reference or reference.clusters is None:
        return SetAside()
    feats = with_groups(reference.features, reference.groups or reference.clusters, "ref:")
    return self_scan(feats, reference.clusters, settings=settings, cleared=cleared)[1]


def self_scan(
    features: pa.Table, clusters: pa.Table, *, settings: Settings, cleared: frozenset[str] = frozenset()
) -> tuple[Calibrated, SetAside]:
    """Vet a population that is its own reference: fit, set aside campaigns and flags, refit.

    ``features`` carry ``neighbour_group``. Returns the detector fitted on what was kept
    (conformal threshold over the kept accounts, as for a separate reference) and what was set aside.
    """
    harvesters = {a: harvest_reason(ev) for a, ev in trace_harvesters(
        features, bar=settings.detect.trace_vouch_evidence,
        min_exchanges=settings.detect.trace_harvest_min_exchanges).items() if a not in cleared}
    aside = SetAside(dict(sorted(harvesters.items())))
    for _ in range(settings.detect.vetting_rounds + 1):  # at least once: ``det`` is always set
        library = _with_cleared(_without(features, set(aside.reasons)), features, cleared)
        det = _calibrated(settings, has_reference=False).fit(library)
        scores = score_accounts(det, features, explain=False)
        _, campaigns, _ = find_campaigns(scores, clusters, features=features, det=det, settings=settings,
                                         cleared=cleared)
        reasons = {a: member_reason(c) for c in campaigns for a in c.account_ids}
        for a, s, f in zip(scores.column("account_id").to_pylist(), scores.column("score").to_pylist(),
                           scores.column("flagged").to_pylist(), strict=True):
            if f and a not in reasons:
                reasons[a] = f"flagged on its own (score {s:.2f})"
        reasons = {**reasons, **harvesters}  # set aside from the start: that is why, whatever followed
        reasons = {a: r for a, r in sorted(reasons.items()) if a not in cleared}
        if reasons == aside.reasons:
            break
        aside = SetAside(reasons)
    return det, aside


def with_groups(features: pa.Table, groups: pa.Table | dict[str, str] | None, prefix: str) -> pa.Table:
    """``features`` with ``neighbour_group``: ``prefix`` + the account's group (null if unlinked).

    ``groups``: account → group id, or a clusters table (``account_id``, ``cluster_id``).
    """
    cluster_of: dict[str, str] = {}
    if isinstance(groups, dict):
        cluster_of = {a: prefix + g for a, g in groups.items()}
    elif groups is not None:
        cluster_of = {r["account_id"]: prefix + r["cluster_id"]
                      for r in groups.select(["account_id", "cluster_id"]).to_pylist() if r["cluster_id"]}
    groups = pa.array([cluster_of.get(a) for a in features.column("account_id").to_pylist()], pa.string())
    if GROUP_COLUMN in features.column_names:
        return features.set_column(features.schema.get_field_index(GROUP_COLUMN), GROUP_COLUMN, groups)
    return features.append_column(GROUP_COLUMN, groups)


def _without(features: pa.Table, accounts: set[str]) -> pa.Table:
    if not accounts:
        return features
    keep = pc.invert(pc.is_in(features.column("account_id"), pa.array(sorted(accounts), pa.string())))
    return features.filter(keep)


def _with_cleared(library: pa.Table, features: pa.Table, cleared: frozenset[str]) -> pa.Table:
    """``library`` plus a copy of each cleared account's row as its own group (``cleared:ID``): an
    analyst's decision makes the account's present behaviour a benign neighbour of itself."""
    if not cleared:
        return library
    rows = features.filter(pc.is_in(features.column("account_id"), pa.array(sorted(cleared), pa.string())))
    if rows.num_rows == 0:
        return library
    # The copy gets its own id too: an account's own history (same id) is never its neighbour,
    # and the copy must be one.
    copies = pa.array(["cleared:" + a for a in rows.column("account_id").to_pylist()], pa.string())
    rows = rows.set_column(rows.schema.get_field_index(GROUP_COLUMN), GROUP_COLUMN, copies)
    rows = rows.set_column(rows.schema.get_field_index("account_id"), "account_id", copies)
    return pa.concat_tables([library, rows.select(library.column_names).cast(library.schema)])


def _calibrated(settings: Settings, *, has_reference: bool) -> Calibrated:
    # Nearest-neighbour novelty in both cases: with neighbour groups a population can be its own
    # reference (a cluster never vouches for itself), which robust z-scores of the tails cannot.
    name = settings.detect.scorer
    if name == "auto":
        name = "knn-novelty"
    # Conformal in both cases too: the library (a vetted reference, or what vetting kept) is a sample
    # of benign behaviour apart from the account scored, which is never its own neighbour.
    return Calibrated(make_scorer(name, has_reference, settings.detect.k_neighbors),
                      settings.detect.target_fpr, settings.detect.min_exchanges, conformal=True)


def score_accounts(det: Detector, features: pa.Table, explain: bool = True) -> pa.Table:
    """account_id, score, flagged, reasons (``schema.ACCOUNT_SCORES``) from a fitted detector."""
    scores = det.suspicion(features) if features.num_rows else np.zeros(0)
    flagged = det.flag(features, scores) if features.num_rows else np.zeros(0, bool)
    reasons = det.explain(features) if explain else [[] for _ in range(features.num_rows)]
    return pa.table({
        "account_id": features.column("account_id"),
        "score": pa.array(scores, pa.float64()),
        "flagged": pa.array(flagged, pa.bool_()),
        "reasons": pa.array(reasons, pa.list_(pa.string())),
    })
