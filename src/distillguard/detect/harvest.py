"""Harvest evidence on an absolute scale: what a group of accounts must do to harvest a model.

Novelty says an account is unlike the reference; it cannot say why, and a reference that
already holds the campaign (last month's traffic, unvetted) or a population scanned without
one washes it out. Harvest evidence does not depend on any reference: each term is a share in
[0, 1] of the group's traffic or accounts, combined as a noisy-OR

    H = 1 − Π (1 − weight × share)

so any one strong trait counts and several weak ones add up. The terms are what distillation
needs from the traffic (traces and answers in a trainable form) and from the accounts (many,
cheaply made):

- reasoning elicited (step-by-step, show-your-work requests: the traces are the product);
- requests shaped for dataset building (JSON lines, fixed fields, "output only ...");
- accounts put to work within two weeks of sign-up (sign-up bursts for the campaign): new *and* busy, at
  ``FLEET_MIN_DAILY`` exchanges or more per active day. Every new customer is new; a university class that
  signs up at the start of term and asks a few questions a day in lab sessions is a group of new accounts,
  and counting newness alone made whole classes campaigns (traffic from a generator written apart from this
  project's simulator, ``benchmarks/independent_traffic.py`` seed 1: 71 students in two campaigns, each on
  this term alone, 0.62 and 0.60). Volume against account age is the trait: a harvester's new accounts
  send 20 to hundreds a day, a student about 4;
- payment cards shared by unrelated accounts (one card behind many accounts; a company card behind
  its own organization's accounts does not count: ``features.account.payment_sharing``), weighing
  more when one card pays for ``PAYMENT_RING`` or more accounts outside their organization: a swarm
  that economizes on cards (random-campaigns seed 5: 267 aged, slow-and-low accounts on two cards,
  each member ordinary alone, harvest evidence 0.67 and no campaign; a reseller paying for its
  clients' accounts is the benign case to review);
- reasoning elicited around the clock (the elicitation share times the share of hours the
  account is active in: scripts harvesting traces, not a class that asks for steps in lessons);
- reasoning elicited across a fleet (the elicitation share times the fleet's breadth: the members
  that each pull a harvest of their own, ``FLEET_MIN_DAILY`` exchanges or more per active day, from
  0 at ``FLEET_MIN`` such accounts to 1 at ``FLEET_FULL`` on a log scale). A hydra spreads its trace
  harvest over dozens of accounts so no one of them stands out; a class's students ask a few
  questions a day each. It counts only beside members that look unusual (``alone`` leaves it out): the
  coordinated gate, which needs no unusual member, and the reference's vetting leave it out, because
  a large benign group that asks for reasoning (a tutoring product with a key per student, an eval
  team's keys running chain-of-thought benchmarks) is a fleet too. Measured on the detection
  benchmark: a release chaser of 73 aged accounts on datacenter proxies, half its requests
  eliciting reasoning (random-campaigns seed 4), had 0.29 without it and 0.54 with it (73 members
  at 20 a day or more); counting every member made a class of 27 behind one NAT, 69% of its
  requests step-by-step, a campaign (evasive seed 3: 0.46); no classroom in the benchmark has a
  student at 20 a day. A rate, not a count, so a class looks the same in a day's scan and in a
  30-day window. Cheap to evade: elicit in fewer requests, or keep the instruction out of the
  last user message (the only one ``elicitation_rate`` reads).

Continuous operation alone is not a term: batch jobs and SaaS backends run around the clock
on plain requests, and counting it made an enterprise's own fleet of batch keys a campaign
(hard-negatives: up to 100% of enterprise-batch accounts flagged). It counts where it
multiplies what a harvester extracts. A classroom (old accounts, elicitation in lesson hours,
own cards) or a SaaS backend (plain answers around the clock) scores low however novel it
is; a hydra cluster scores high however ordinary each member looks. Used at cluster level
(``campaign_evidence``) to decide which novel clusters are campaigns and to let a large,
tightly linked cluster with strong evidence become one on its own.

>>> import pyarrow as pa
>>> f = pa.table({"account_id": ["a", "b", "c"], "n_exchanges": [100, 100, 100],
...               "elicitation_rate": [0.9, 0.8, 0.7], "harvest_format_share": [0.0, 0.0, 0.0],
...               "account_age_days": [0.5, 1.0, 300.0], "payment_shared_accounts": [1, 1, 0],
...               "exchanges_per_active_day": [40.0, 25.0, 30.0]})
>>> c = pa.table({"account_id": ["a", "b", "c"], "cluster_id": ["k1", "k1", "k1"]})
>>> ev = campaign_evidence(f, c)["k1"]
>>> round(ev.score, 3), ev.reasons[0]
(0.728, '67% of accounts put to work within 14 days of sign-up (20 or more exchanges a day)')
>>> students = f.set_column(6, "exchanges_per_active_day", pa.array([4.0, 4.0, 4.0]))
>>> round(campaign_evidence(students, c)["k1"].score, 3)  # new, but a few questions a day
0.547
>>> fleet = pa.table({"account_id": ["d", "e"], "n_exchanges": [100, 100], "elicitation_rate": [0.05, 0.05],
...                   "duty_cycle": [1.0, 1.0], "account_age_days": [400.0, 400.0]})
>>> k = pa.table({"account_id": ["d", "e"], "cluster_id": ["k2", "k2"]})
>>> round(campaign_evidence(fleet, k)["k2"].score, 3)  # batch keys around the clock, plain requests
0.059
>>> traces = fleet.set_column(2, "elicitation_rate", pa.array([0.6, 0.6]))
>>> round(campaign_evidence(traces, k)["k2"].score, 3)  # reasoning traces around the clock
0.605
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

FRESH_DAYS = 14.0
"""An account first used within this many days of sign-up counts as fresh."""
PAYMENT_RING = 10
"""Accounts outside its organization one card pays for, from which the card is a ring (``payment_ring``)."""
FLEET_MIN, FLEET_FULL = 10, 100
"""Harvesting members from which reasoning elicited across a fleet counts (``fleet``), and where it counts in full."""
FLEET_MIN_DAILY = 20.0
"""Exchanges per active day a member needs to count in a fleet's breadth (chat users and students: about 6)."""
BESIDE_UNUSUAL = frozenset({"fleet"})
"""Terms that count only beside members that look unusual (``HarvestEvidence.alone`` leaves them out)."""

TERMS: dict[str, tuple[float, str]] = {
    "elicitation": (0.4, "reasoning elicited in {v:.0%} of requests"),
    "formatting": (1.0, "{v:.0%} of requests shaped for dataset building"),
    "fresh": (0.6, "{v:.0%} of accounts put to work within 14 days of sign-up (20 or more exchanges a day)"),
    "payment": (0.5, "{v:.0%} of accounts share a payment card with accounts outside their organization"),
    "payment_ring": (0.8, "{v:.0%} of accounts share one payment card with ten or more accounts outside their "
                          "organization"),
    "sustained": (0.8, "reasoning elicited around the clock ({v:.0%}: elicitation share x active-hours share)"),
    "fleet": (0.8, "reasoning elicited across a fleet of linked accounts ({v:.0%}: elicitation share x fleet "
                   "breadth)"),
}
"""term → (weight, reason template). Weights < 1 where ordinary customers show the trait too:
a maths class asks for step-by-step answers all lesson long (elicitation alone stays below
``link.min_harvest_evidence``), new customers start within days; a class is not in session
around the clock, so elicitation sustained over the account's hours weighs more, and a class
is one class: elicitation across many linked accounts weighs more too."""


@dataclass(frozen=True)
class HarvestEvidence:
    """One group's harvest evidence: the combined score in [0, 1], each term's share, the reasons."""

    score: float
    shares: dict[str, float]
    reasons: list[str]

    @property
    def alone(self) -> HarvestEvidence:
        """The evidence that stands where no member need look unusual: every term but ``BESIDE_UNUSUAL``.

        >>> combine({"elicitation": 0.5, "fleet": 0.5}).alone.score
        0.2
        """
        return combine({t: v for t, v in self.shares.items() if t not in BESIDE_UNUSUAL})


def combine(shares: dict[str, float]) -> HarvestEvidence:
    """Noisy-OR of the weighted shares, with a reason for every term of weighted share ≥ 0.2.

    >>> combine({"elicitation": 0.0, "formatting": 0.5}).score
    0.5
    """
    keep = 1.0
    reasons = []
    for term, share in sorted(shares.items(), key=lambda kv: -kv[1] * TERMS[kv[0]][0]):
        weight, template = TERMS[term]
        share = float(min(max(share, 0.0), 1.0))
        keep *= 1.0 - weight * share
        if weight * share >= 0.2:
            reasons.append(template.format(v=share))
    return HarvestEvidence(round(1.0 - keep, 6), shares, reasons)


def campaign_evidence(features: pa.Table, clusters: pa.Table) -> dict[str, HarvestEvidence]:
    """Harvest evidence of each cluster, from its members' account features.

    Traffic terms are exchange-weighted over the members (the cluster as one harvester);
    account terms are shares of members. ``clusters``: ``account_id`` and ``cluster_id``.
    """
    rows = {r["account_id"]: r for r in features.select(
        [c for c in ("account_id", "n_exchanges", "elicitation_rate", "harvest_format_share", "account_age_days",
                     "duty_cycle", "payment_shared_accounts", "exchanges_per_active_day")
         if c in features.column_names]).to_pylist()}
    members: dict[str, list[dict[str, object]]] = defaultdict(list)
    for c in clusters.select(["account_id", "cluster_id"]).to_pylist():
        if c["cluster_id"] is not None and c["account_id"] in rows:
            members[c["cluster_id"]].append(rows[c["account_id"]])
    out = {}
    for cluster_id, ms in members.items():
        volume = np.array([_float(m.get("n_exchanges"), 0.0) for m in ms])
        weights = volume / volume.sum() if volume.sum() > 0 else np.full(len(ms), 1 / len(ms))
        age = np.array([_float(m.get("account_age_days")) for m in ms])
        daily = np.array([_float(m.get("exchanges_per_active_day"), 0.0) for m in ms])
        elicited = float(weights @ np.array([_float(m.get("elicitation_rate"), 0.0) for m in ms]))
        out[cluster_id] = combine({
            "elicitation": elicited,
            "formatting": float(weights @ np.array([_float(m.get("harvest_format_share"), 0.0) for m in ms])),
            "fresh": float(np.mean((np.nan_to_num(age, nan=np.inf) < FRESH_DAYS) & (daily >= FLEET_MIN_DAILY))),
            "payment": float(np.mean([1 <= _float(m.get("payment_shared_accounts"), 0.0) < PAYMENT_RING
                                      for m in ms])),
            "payment_ring": float(np.mean([_float(m.get("payment_shared_accounts"), 0.0) >= PAYMENT_RING
                                           for m in ms])),
            "sustained": float(weights @ np.array([_float(m.get("duty_cycle"), 0.0)
                                                   * _float(m.get("elicitation_rate"), 0.0) for m in ms])),
            "fleet": elicited * fleet_breadth(int(np.sum(daily >= FLEET_MIN_DAILY))),
        })
    return out


def fleet_breadth(accounts: int) -> float:
    """How much a cluster of ``accounts`` counts as a fleet: 0 up to ``FLEET_MIN``, 1 from ``FLEET_FULL``.

    >>> [round(fleet_breadth(n), 2) for n in (3, 10, 30, 73, 100, 1000)]
    [0.0, 0.0, 0.48, 0.86, 1.0, 1.0]
    """
    if accounts <= FLEET_MIN:
        return 0.0
    return min(float(np.log(accounts / FLEET_MIN) / np.log(FLEET_FULL / FLEET_MIN)), 1.0)


def trace_harvesters(features: pa.Table, *, bar: float, min_exchanges: int) -> dict[str, HarvestEvidence]:
    """Accounts whose own traffic is a trace harvest: harvest evidence of ``bar`` from reasoning alone.

    The account's evidence from its traffic terms that no ordinary customer sustains:
    reasoning elicited, and elicited around the clock (``sustained``), over at least
    ``min_exchanges`` exchanges. A class asks for steps in lesson hours and stays below
    the bar; a script harvesting traces day and night does not, linked to others or not.

    >>> f = pa.table({"account_id": ["script", "class", "new"], "n_exchanges": [400, 400, 20],
    ...               "elicitation_rate": [0.95, 0.9, 1.0], "duty_cycle": [0.9, 0.3, 1.0]})
    >>> found = trace_harvesters(f, bar=0.6, min_exchanges=50)
    >>> sorted(found), round(found["script"].score, 3)
    (['script'], 0.804)
    """
    cols = ("account_id", "n_exchanges", "elicitation_rate", "duty_cycle")
    if not set(cols) <= set(features.column_names):
        return {}
    out = {}
    for r in features.select(list(cols)).to_pylist():
        if _float(r["n_exchanges"], 0.0) < min_exchanges:
            continue
        elicited = _float(r["elicitation_rate"], 0.0)
        evidence = combine({"elicitation": elicited, "sustained": elicited * _float(r["duty_cycle"], 0.0)})
        if evidence.score >= bar:
            out[r["account_id"]] = evidence
    return out


OWN_TERMS = frozenset({"elicitation", "formatting", "fresh", "sustained"})
"""The terms an account shows by itself (its traffic, its volume against its age); cards and fleets are links."""


def harvest_carriers(features: pa.Table, *, bar: float, min_exchanges: int) -> set[str]:
    """Accounts whose own traffic and volume carry harvest evidence of ``bar`` (``OWN_TERMS`` only).

    A member of a linked cluster that carries it is one of the campaign's accounts, not a passenger
    on its proxy exits (``decide.gates``): a customer of the proxy service asks what people ask, at
    the pace people ask it. Over at least ``min_exchanges`` exchanges.

    >>> f = pa.table({"account_id": ["bot", "vpn-user"], "n_exchanges": [700, 60],
    ...               "elicitation_rate": [0.05, 0.1], "account_age_days": [3.0, 2.0],
    ...               "exchanges_per_active_day": [50.0, 5.0]})
    >>> sorted(harvest_carriers(f, bar=0.45, min_exchanges=20))
    ['bot']
    """
    ids = features.column("account_id").to_pylist()
    evidence = campaign_evidence(features, pa.table({"account_id": ids, "cluster_id": ids}))
    counts = dict(zip(ids, features.column("n_exchanges").to_pylist(), strict=True))
    out = set()
    for a, ev in evidence.items():
        own = combine({t: v for t, v in ev.shares.items() if t in OWN_TERMS})
        if own.score >= bar and _float(counts.get(a), 0.0) >= min_exchanges:
            out.add(a)
    return out


def _float(value: object, default: float = float("nan")) -> float:
    return default if value is None else float(value)  # type: ignore[arg-type]
