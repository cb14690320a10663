"""What the report tells an analyst: confidence tiers, the policy's actions in words, the next step.

A campaign scoring 0.53 and one scoring 0.96 get the same ``challenge`` from the policy
table; the tier and the next step are where they differ, so an analyst knows which to read
first and what to check before sharing it.

>>> tier(0.96).name, tier(0.7).name, tier(0.53).name
('high', 'medium', 'low')
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.config import Settings
from distillguard.decide.gates import MIN_JUDGED_EXCHANGES
from distillguard.detect.calibrated import certified_fpr
from distillguard.detect.harvest import FLEET_MIN, FLEET_MIN_DAILY
from distillguard.records.summary import ScanSummary


@dataclass(frozen=True)
class Tier:
    """A confidence tier of campaign scores: ``name``, the lowest score in it, and what it means."""

    name: str
    floor: float
    meaning: str
    todo: str  # the next step in a few words (``next_step`` says it in full)


TIERS = (
    Tier("high", 0.8, "most members unusual, tightly linked by rare shared evidence",
         "confirm from the evidence, then share it"),
    Tier("medium", 0.6, "a campaign by the rules, but smaller, looser or with weaker shared evidence",
         "read the members before sharing; clear legitimate ones"),
    Tier("low", 0.0, "passed the campaign gates with little to spare", "look before acting: the evidence is thin"),
)
"""Highest first. The campaign score is ``suspicious share × (0.4 + 0.2·size + 0.2·density + 0.2·evidence)``:
a three-account campaign, all members unusual and fully linked by strong evidence, scores about 0.88."""


def tier(score: float) -> Tier:
    """The tier a campaign score falls in."""
    return next(t for t in TIERS if score >= t.floor)


ACTIONS = {
    "allow": "served as usual",
    "monitor": "served; each request marked in the exchange log",
    "throttle": "served under scaled-down rate limits",
    "challenge": "requests refused (403) until step-up verification",
    "block": "requests refused (403)",
}
"""What the gateway does with a subject's requests (``gateway``), in an analyst's words."""


def action_words(action: str, cluster: bool) -> str:
    """What an action does; a cluster's applies to every member and to accounts linked to it later.

    >>> action_words("throttle", cluster=False)
    'served under scaled-down rate limits'
    """
    words = ACTIONS.get(action, action)
    return f"{words}, for every member and for accounts linked to the cluster later" if cluster else words


def next_step(tier_name: str, out_dir: str) -> str:
    """The next thing to do about a campaign of ``tier_name``; commands in backticks (the page shows them as code).

    >>> next_step("high", "out").split(": ")[1]
    '`distillguard export-stix out --out bundle.json`. Re-scan before the decision expires to renew it.'
    """
    share = f"`distillguard export-stix {out_dir} --out bundle.json`"
    if tier_name == "high":
        return (f"Confirm from the evidence below, then share the indicators with partners: {share}. "
                "Re-scan before the decision expires to renew it.")
    if tier_name == "medium":
        return ("Read the members and the shared infrastructure before sharing: a legitimate customer's fleet "
                "can look like this. Clear legitimate accounts by listing them in a file passed to "
                f"`scan --benign` and re-scanning; share the rest ({share}).")
    return ("Look before acting: the evidence is thin. The gateway challenges the members anyway once it "
            "loads `policy.json`; clear legitimate accounts with `scan --benign`, and re-scan with more traffic "
            "or a larger reference before sharing.")


@dataclass(frozen=True)
class FlagRule:
    """How an account is flagged in this scan: on its own, or as a member of a campaign (``gates``: any one)."""

    own: str
    member: str
    gates: list[str]


def scan_settings(summary: ScanSummary) -> Settings | None:
    """The detect and link settings a scan recorded in ``summary.json`` (None: an older scan's outputs).

    >>> s = ScanSummary.model_validate({"version": "0", "traffic_dir": "t", "engine": "duckdb", "exchanges": 1,
    ...     "quarantined": 0, "first_seen": None, "last_seen": None, "threshold": None, "target_fpr": 0.001,
    ...     "scorer": "knn-novelty", "settings": {"link": {"min_campaign_accounts": 7}}})
    >>> scan_settings(s).link.min_campaign_accounts
    7
    """
    return None if summary.settings is None else Settings.model_validate(summary.settings)


def flag_rule(*, threshold: float | None, units: str, target_fpr: float, member_threshold: float | None,
              member_fpr: float | None, reference_accounts: int | None = None,
              settings: Settings | None = None) -> FlagRule:
    """The rules that flag an account, as the scan applied them, with this scan's numbers.

    ``settings``: the settings the scan recorded (``summary.json``); without them (outputs of
    an older version) the numbers are the defaults of ``config.Settings``, and the text says so.
    ``reference_accounts``: how many benign accounts set the threshold (a small reference
    cannot certify the target rate).

    >>> rule = flag_rule(threshold=13.6, units="score", target_fpr=0.001, member_threshold=6.8, member_fpr=0.05)
    >>> rule.own.split(":")[0], "6.80" in rule.gates[0], len(rule.gates)
    ('On its own', True, 3)
    """
    recorded = settings is not None
    d, link = (settings or Settings()).detect, (settings or Settings()).link
    minimum = f"at least {d.min_exchanges} exchanges (detect.min_exchanges{'' if recorded else ', by default'})"
    rate = f"aims to let through at most {target_fpr:.2%} of benign accounts"
    if reference_accounts and certified_fpr(reference_accounts, target_fpr) > target_fpr:
        rate += (f" (a reference of {reference_accounts:,} accounts can only certify "
                 f"{certified_fpr(reference_accounts, target_fpr):.2%}: give a larger one)")
    if threshold is None:
        own = ("On its own: never in this scan, because the reference was too small to set a flag threshold "
               "at the target false-positive rate.")
    elif units == "threshold multiples":
        own = ("On its own: a score above 1 and " + minimum + ". The score is in multiples of the flag threshold "
               "of whichever view finds the account most unusual (the vetted reference, or the population vetted "
               f"against itself); each view's threshold {rate}.")
    else:
        own = f"On its own: a score above the flag threshold {threshold:.2f} and {minimum}. The threshold {rate}."
    share = f"{member_fpr if member_fpr is not None else link.member_fpr:.0%}"
    if member_threshold is not None:
        bar = f"the member bar, score {member_threshold:.2f} (the score {share} of benign accounts exceed)"
    elif units == "threshold multiples":
        bar = (f"the member bar: each view's score that {share} of benign accounts exceed (one bar per view, not "
               "one number on the threshold-multiple scale)")
    else:
        bar = f"the member bar (the score {share} of benign accounts exceed)"
    if threshold is not None:
        own += (f" Or a score above {bar} and its own traffic a trace harvest: reasoning elicited around the "
                f"clock, harvest evidence of {d.trace_harvest_evidence:.2f} or more over "
                f"{d.trace_harvest_min_exchanges} exchanges or more, linked or not.")
    most = f"at least {link.min_suspicious_share:.0%} of its members"
    member = ("As a campaign member: every account of a linked cluster that passed the campaign gates, whatever its "
              "own score, except passengers: members tied to the campaign only by what is shared by chance (proxy "
              "exits, client software, an e-mail provider) and neither above the member bar over "
              f"{MIN_JUDGED_EXCHANGES} exchanges or more nor tied to its operation (cards, sign-up bursts, templates, "
              f"timing). A cluster needs {link.min_campaign_accounts} or more accounts and one of these "
              "(harvest evidence: requests shaped for dataset building, accounts put to work soon after sign-up, "
              "payment cards shared across organizations, reasoning elicited around the clock or across a fleet: "
              f"more than {FLEET_MIN} linked accounts each pulling {FLEET_MIN_DAILY:.0f} exchanges or more a day"
              + ("; the settings this scan ran with):" if recorded
                 else "; default settings, which --config may change):"))
    gates = [
        f"{most} above {bar}, and harvest evidence of {link.min_harvest_evidence:.2f} or more (a member that "
        "used a partner's shared indicator counts as above the bar, and such a cluster needs no harvest evidence);",
        f"{most} above a looser bar (the score {link.loose_member_fpr:.0%} of benign accounts exceed), and harvest "
        f"evidence of {link.loose_min_harvest_evidence:.2f} or more;",
        f"{link.coordinated_min_accounts} or more members and harvest evidence of "
        f"{link.coordinated_harvest_evidence:.2f} or more, however ordinary each member looks alone (reasoning "
        "elicited across a fleet does not count here: a large benign group that asks for reasoning is one too).",
    ]
    return FlagRule(own, member, gates)
