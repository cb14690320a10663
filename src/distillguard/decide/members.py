"""Account rows around campaigns: the view the gates read, campaign members flagged, and why.

An account is flagged for one of these reasons, and ``flag_reasons`` says which in words:

- **on its own**: its score is above the flag threshold and it has at least
  ``detect.min_exchanges`` exchanges (``detect.Calibrated.flag``, ``detect.Either.flag``);
- **on its own, as a trace harvester**: its score is above the (lower) member bar and its own
  traffic is a trace harvest (``detect.harvest.trace_harvesters``; ``flag_harvesters``);
- **as a campaign member**: its link cluster passed the campaign gates (``gates``: most members
  above the looser member bar, plus harvest evidence; or a large cluster with strong harvest
  evidence alone), which flags every member whatever its own score.

``flag_campaign_members`` keeps the first in ``flagged_alone`` and ORs in the second.

>>> scores = pa.table({"account_id": ["a", "b"], "score": [0.1, 0.2], "flagged": [False, False],
...                    "reasons": [[], ["odd"]]})
>>> member = Campaign.model_validate({"campaign_id": "campaign-0001", "account_ids": ["b"], "exchange_count": 1,
...     "score": 0.5, "capabilities": {}, "first_seen": "2026-02-02T00:00:00+00:00",
...     "last_seen": "2026-02-02T00:00:00+00:00", "evidence": []})
>>> flagged = flag_campaign_members(scores, [member])
>>> flagged.column("reasons").to_pylist(), flagged.column("flagged_alone").to_pylist()
([[], ['member of campaign-0001 (1 linked account)', 'odd']], [False, False])
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from distillguard.detect.harvest import HarvestEvidence
from distillguard.records import Campaign

HARVEST_REASON = "harvest evidence"
"""How the reason of a trace harvester starts (``harvest_reason``)."""


def harvest_reason(evidence: HarvestEvidence) -> str:
    """Why an account's own traffic is a trace harvest, in words.

    >>> from distillguard.detect.harvest import combine
    >>> harvest_reason(combine({"elicitation": 0.9, "sustained": 0.8}))[:60]
    'harvest evidence 0.77 on its own (reasoning elicited around '
    """
    return f"{HARVEST_REASON} {evidence.score:.2f} on its own ({'; '.join(evidence.reasons)})"


def flag_harvesters(scores: pa.Table, harvesters: dict[str, HarvestEvidence]) -> pa.Table:
    """``scores`` with each account of ``harvesters`` flagged on its own, its harvest reason first.

    The caller picks which: trace harvesters above the member bar (``decide.find_campaigns``).

    >>> from distillguard.detect.harvest import combine
    >>> scores = pa.table({"account_id": ["a", "b"], "score": [0.1, 0.2], "flagged": [False, False],
    ...                    "reasons": [[], []]})
    >>> out = flag_harvesters(scores, {"b": combine({"elicitation": 1.0, "sustained": 1.0})})
    >>> out.column("flagged").to_pylist(), out.column("reasons").to_pylist()[1][0][:21]
    ([False, True], 'harvest evidence 0.88')
    """
    if not harvesters:
        return scores
    flagged, reasons = [], []
    for account, flag, why in zip(scores.column("account_id").to_pylist(), scores.column("flagged").to_pylist(),
                                  scores.column("reasons").to_pylist(), strict=True):
        ev = harvesters.get(account)
        flagged.append(bool(flag) or ev is not None)
        reasons.append(([harvest_reason(ev)] if ev is not None else []) + (why or []))
    return scores.set_column(scores.schema.get_field_index("flagged"), "flagged", pa.array(flagged, pa.bool_())) \
        .set_column(scores.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.list_(pa.string())))


def member_reason(campaign: Campaign) -> str:
    """The first reason of a campaign member (and why a reference sets it aside)."""
    return f"member of {campaign.campaign_id} ({_count(len(campaign.account_ids), 'linked account')})"


def flag_campaign_members(scores: pa.Table, campaigns: list[Campaign]) -> pa.Table:
    """Members of a campaign are flagged, with the campaign as their first reason.

    The account's own decision (its score alone) is kept in an appended ``flagged_alone``
    column: ``flagged`` = ``flagged_alone`` or campaign member.
    """
    member_of = {a: c for c in campaigns for a in c.account_ids}
    flagged, reasons = [], []
    alone = [bool(f) for f in scores.column("flagged").to_pylist()]
    for account, flag, why in zip(scores.column("account_id").to_pylist(), alone,
                                  scores.column("reasons").to_pylist(), strict=True):
        c = member_of.get(account)
        flagged.append(flag or c is not None)
        reasons.append(([member_reason(c)] if c else []) + (why or []))
    out = scores.set_column(scores.schema.get_field_index("flagged"), "flagged", pa.array(flagged, pa.bool_())) \
        .set_column(scores.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.list_(pa.string())))
    # Kept when present: a second pass must not take the first pass's OR for the account's own flag.
    if "flagged_alone" in out.column_names:
        return out
    return out.append_column("flagged_alone", pa.array(alone, pa.bool_()))


def flag_reasons(view: pa.Table, campaigns: list[Campaign], *, threshold: float | None,
                 member_threshold: float | None = None) -> list[str]:
    """Why each account of ``view`` is or is not flagged: one sentence per row (``flag_reason``).

    ``view``: ``account_view`` rows after ``flag_campaign_members`` (``flagged_alone``,
    ``cluster_id``, ``n_exchanges``); ``threshold``: the flag threshold the scores are
    compared with (``summary.json``); ``member_threshold``: the member bar on the same
    scale, where there is one number for it.

    >>> view = pa.table({"account_id": ["a", "b", "c"], "score": [3.0, 5.0, 0.5], "flagged": [False, False, True],
    ...                  "flagged_alone": [False, False, False], "cluster_id": [None, None, "k"],
    ...                  "n_exchanges": [40, 2, 90]})
    >>> c = Campaign.model_validate({"campaign_id": "campaign-0001", "cluster_id": "k", "account_ids": ["c"],
    ...     "exchange_count": 90, "score": 0.9, "capabilities": {}, "first_seen": "2026-02-02T00:00:00+00:00",
    ...     "last_seen": "2026-02-02T00:00:00+00:00", "evidence": [], "suspicious_share": 1.0})
    >>> unlinked, few, member = flag_reasons(view, [c], threshold=4.0)
    >>> unlinked
    'not flagged: score 3.00 not above the flag threshold 4.00; not linked to other accounts'
    >>> few.split(", but ")[1].split("; ")
    ['2 exchanges are too few to flag an account on its own', 'not linked to other accounts']
    >>> member.split("; its own ")[1]
    'score 0.50 not above the flag threshold 4.00'
    """
    member_of = {a: c for c in campaigns for a in c.account_ids}
    cluster_size: dict[str, int] = {}
    for k in view.column("cluster_id").to_pylist():
        if k is not None:
            cluster_size[k] = cluster_size.get(k, 0) + 1
    alone = (view.column("flagged_alone") if "flagged_alone" in view.column_names else view.column("flagged"))
    out = []
    cols = ["account_id", "score", "cluster_id", "n_exchanges"] + (["reasons"] if "reasons" in view.column_names
                                                                    else [])
    for row, own in zip(view.select(cols).to_pylist(), alone.to_pylist(), strict=True):
        campaign = member_of.get(row["account_id"])
        score = _own(row, bool(own), threshold, member_threshold)
        if campaign is not None:
            out.append(f"flagged on its own ({score}) and as a member of {campaign.campaign_id}" if own else
                       f"flagged as a member of {campaign.campaign_id} ({_gates(campaign)}); its own {score}")
        elif own:
            out.append(f"flagged on its own: {score}")
        elif row["cluster_id"] is not None:
            size = _count(cluster_size[row["cluster_id"]], "linked account")
            out.append(f"not flagged: {score}; its {row['cluster_id']} ({size}) did not pass the campaign gates")
        else:
            out.append(f"not flagged: {score}; not linked to other accounts")
    return out


def _own(row: dict[str, Any], own: bool, threshold: float | None, member_threshold: float | None) -> str:
    """The account's own score against the flag threshold (and the member bar, when it is one number)."""
    score = row["score"] or 0.0
    if threshold is None:
        return f"score {score:.2f}, no flag threshold (the reference was too small)"
    s, t = _pair(score, threshold)
    bar = ""
    if member_threshold is not None and not own:
        m = _pair(score, member_threshold)[1]
        bar = f" ({'above' if score > member_threshold else 'not above'} the member bar {m})"
    harvest = next((r for r in row.get("reasons") or [] if r.startswith(HARVEST_REASON)), None)
    if own and harvest is not None and score <= threshold:
        m = f" {_pair(score, member_threshold)[1]}" if member_threshold is not None else ""
        return f"score {s} above the member bar{m} and {harvest}"
    if own:
        return f"score {s} above the flag threshold {t}"
    if score > threshold:  # the only other condition of a flag: enough traffic to judge
        return (f"score {s} above the flag threshold {t}, but {_count(row['n_exchanges'] or 0, 'exchange')} "
                f"{'is' if row['n_exchanges'] == 1 else 'are'} too few to flag an account on its own")
    if score == threshold:  # the threshold is a reference score, possibly this account's own
        return f"score {s} equal to the flag threshold, not above it{bar}"
    return f"score {s} not above the flag threshold {t}{bar}"


def _gates(c: Campaign) -> str:
    """Which campaign gate the campaign passed, with its numbers."""
    size = _count(len(c.account_ids), "linked account")
    harvest = f", harvest evidence {c.harvest_evidence.score:.2f}" if c.harvest_evidence is not None else ""
    if c.coordinated:
        return f"{size}; a campaign by its links and harvest evidence alone{harvest}"
    share = f"; {c.suspicious_share:.0%} of members above the member bar" if c.suspicious_share is not None else ""
    return f"{size}{share}{harvest}"


def _pair(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with two decimals, or more where two would print a tie that is not one."""
    for digits in range(2, 7):
        x, y = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if x != y or a == b:
            return x, y
    return x, y


def _count(n: int, noun: str) -> str:
    """``1 linked account``, ``3 linked accounts``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def account_view(scores: pa.Table, clusters: pa.Table, features: pa.Table) -> pa.Table:
    """Scores with cluster, link evidence and volume columns, one row per account, sorted by id."""
    cluster_of = {r["account_id"]: r for r in clusters.to_pylist()}
    volume = {r["account_id"]: r for r in features.select(["account_id", "n_exchanges", "first_seen",
                                                             "last_seen"]).to_pylist()}
    rows = []
    for r in sorted(scores.to_pylist(), key=lambda r: r["account_id"]):
        c, v = cluster_of.get(r["account_id"], {}), volume.get(r["account_id"], {})
        if c.get("partner_indicators"):
            shown = ", ".join(c["partner_indicators"][:3])
            r = {**r, "reasons": [f"used {len(c['partner_indicators'])} indicators shared by partners ({shown})",
                                  *(r["reasons"] or [])]}
        rows.append({**r, "cluster_id": c.get("cluster_id"), "link_evidence": c.get("link_evidence"),
                     "partner_indicators": c.get("partner_indicators") or [],
                     "n_exchanges": v.get("n_exchanges"), "first_seen": v.get("first_seen"),
                     "last_seen": v.get("last_seen")})
    schema = scores.schema.append(pa.field("cluster_id", pa.string())).append(
        pa.field("link_evidence", pa.list_(pa.string()))).append(
        pa.field("partner_indicators", pa.list_(pa.string()))).append(pa.field("n_exchanges", pa.int64())).append(
        pa.field("first_seen", features.schema.field("first_seen").type)).append(
        pa.field("last_seen", features.schema.field("last_seen").type))
    return pa.Table.from_pylist(rows, schema=schema)
