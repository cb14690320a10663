"""Accounts and arrival plans: who sends how much, when, from where.

Planning is cheap (a few numbers per exchange in NumPy arrays); rendering the
bodies happens later, shard by shard, so memory stays bounded by the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from distillguard.sim import network, timing
from distillguard.sim.scenario import Group, Scenario

DAY = timing.DAY
SESSION_GAP = 600.0
_WEBMAIL = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com")
_CLASS_SIZE = 30


@dataclass
class Account:
    index: int  # position in the plan (ids are assigned after a shuffle)
    group: int
    identity: network.Identity
    created_at: float
    payment: str | None
    email_domain: str
    organization: str | None
    api_key: str
    tz: float
    proxy_pool: tuple[str, ...] = ()  # exits this account's requests go through
    proxy_share: float = 0.0  # share of requests through the pool
    harvest_from: float = 0.0  # sleeper accounts: benign-looking traffic before this time (epoch s)


@dataclass
class Plan:
    """Every exchange as (time, account, conversation, turn, variant, seq)."""

    accounts: list[Account] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    account: list[np.ndarray] = field(default_factory=list)
    variant: list[np.ndarray] = field(default_factory=list)

    def arrays(self, multi_turn: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """Plan rows in time order, with conversation, turn and per-account sequence.

        ``multi_turn[g]`` is the chance that a session of group ``g`` is a
        multi-turn conversation. Sessions are runs of one account's exchanges
        less than ``SESSION_GAP`` apart; a conversation has at most 7 turns.
        """
        t = np.concatenate(self.t) if self.t else np.empty(0)
        acct = np.concatenate(self.account).astype(np.int32) if self.account else np.empty(0, np.int32)
        var = np.concatenate(self.variant).astype(np.int16) if self.variant else np.empty(0, np.int16)
        by_acct = np.lexsort((t, acct))
        a_s, t_s = acct[by_acct], t[by_acct]
        first = np.r_[True, a_s[1:] != a_s[:-1]]
        new_session = first | np.r_[True, np.diff(t_s) >= SESSION_GAP]
        session = np.cumsum(new_session) - 1
        idx = np.arange(len(t_s))
        pos_in_session = idx - np.maximum.accumulate(np.where(new_session, idx, 0))
        block = session * 1000 + pos_in_session // 7  # a new conversation every 7 turns
        rng = np.random.default_rng([seed, 5])
        groups = np.array([a.group for a in self.accounts], dtype=np.int32)
        is_conv = rng.random(session[-1] + 1 if len(session) else 0) < multi_turn[groups[a_s]][new_session]
        conv_of_session = np.where(is_conv, rng.integers(0, 2**46, len(is_conv)), -1)
        conv = np.where(conv_of_session[session] >= 0, conv_of_session[session] + block % 1000, -1)
        turn = np.where(conv >= 0, pos_in_session % 7, 0)
        seq = idx - np.maximum.accumulate(np.where(first, idx, 0))
        out = {"t": t_s, "account": a_s, "variant": var[by_acct], "conv": conv, "turn": turn, "seq": seq}
        order = np.lexsort((out["account"], out["t"]))
        return {k: v[order] for k, v in out.items()}


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def build_plan(scenario: Scenario, seed: int) -> Plan:
    """Accounts and arrival times for every group of ``scenario``."""
    plan = Plan()
    start = epoch(scenario.start)
    pools: dict[int, tuple[str, ...]] = {}
    for gi, g in enumerate(scenario.groups):
        rng = np.random.default_rng([seed, gi, 1])
        if g.network == "proxy-pool":
            pools[gi] = (network.proxy_pool(rng, g.accounts) if g.proxy_kind == "mixed"
                         else network.proxy_pool(rng, g.accounts, g.proxy_kind))
    shared_pool = next(iter(pools.values()), ())
    for gi, g in enumerate(scenario.groups):
        rng = np.random.default_rng([seed, gi])
        first = len(plan.accounts)
        _add_accounts(plan, g, gi, rng, start, pools.get(gi, ()), shared_pool, scenario)
        members = plan.accounts[first:]
        counts = np.maximum(1, np.round(g.exchanges_per_account * rng.lognormal(
            0.0, g.volume_sigma, len(members)) * scenario.days / 7.0)).astype(int)
        active_from = (np.array([max(0.0, a.created_at - start) for a in members])
                       if g.is_attack else np.zeros(len(members)))
        active_from = np.minimum(active_from, scenario.days * DAY * 0.5)
        sleep: list[np.ndarray] = [np.empty(0)] * len(members)
        if g.sleeper_days > 0:
            active_from, sleep = _sleeper(g, np.random.default_rng([seed, gi, 2]), active_from, members,
                                          start, scenario.days)
        times = _times(g, rng, counts, active_from, members, start, scenario.days)
        stay = 0.8 if g.paraphrase_rate is None else 1.0 - g.paraphrase_rate
        for a, ts, ts_sleep in zip(members, times, sleep, strict=True):
            ts = np.sort(np.concatenate([ts_sleep, ts])) if len(ts_sleep) else ts
            plan.t.append(ts)
            plan.account.append(np.full(len(ts), a.index))
            # Campaign accounts mostly stick to one paraphrase variant of their templates.
            main = int(rng.integers(0, 12))
            plan.variant.append(np.where(rng.random(len(ts)) < stay, main, rng.integers(0, 12, len(ts))))
    return plan


def _sleeper(g: Group, rng: np.random.Generator, active_from: np.ndarray, members: list[Account],
             start: float, days: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sleeper phase: a few benign-looking sessions a day until harvesting starts.

    Returns the harvest start (offset from ``start``) per account and the sleeper
    exchange times; ``Account.harvest_from`` records the switch for the renderer.
    """
    harvest = np.minimum(active_from + g.sleeper_days * DAY, days * DAY * 0.7)
    sleep = []
    for a, a0, h0 in zip(members, active_from, harvest, strict=True):
        span = (h0 - a0) / DAY
        k = int(rng.poisson(max(1.0, 4.0 * span)))
        sleep.append(timing.human(rng, k, start=start + a0, days=span, tz_hours=a.tz) if span > 0 and k
                     else np.empty(0))
        a.harvest_from = start + float(h0)
    return harvest, sleep


def _times(g: Group, rng: np.random.Generator, counts: np.ndarray, active_from: np.ndarray,
           members: list[Account], start: float, days: float) -> list[np.ndarray]:
    if g.timing == "round-robin":
        return timing.round_robin(rng, counts, start=start, days=days, active_from=active_from)
    if g.timing == "synchronized" and g.style == "classroom":
        return _class_times(rng, counts, members, start, days)
    if g.timing == "synchronized":
        return timing.synchronized(rng, counts, start=start, days=days, active_from=active_from)
    if g.timing == "cron":
        return [timing.cron(rng, int(k), start=start, days=days) for k in counts]
    if g.timing == "bursts":
        return [timing.bursts(rng, int(k), start=start + a0, days=days - a0 / DAY) for k, a0 in zip(counts, active_from,
                                                                                         strict=True)]
    work = g.style in ("developer", "researcher")
    return [timing.human(rng, int(k), start=start + a0, days=days - a0 / DAY, tz_hours=a.tz, work=work)
            for k, a0, a in zip(counts, active_from, members, strict=True)]


def _class_times(rng: np.random.Generator, counts: np.ndarray, members: list[Account],
                 start: float, days: float) -> list[np.ndarray]:
    """Each class meets at a fixed local hour on weekdays; students ask during class."""
    out = []
    for i, (k, a) in enumerate(zip(counts, members, strict=True)):
        cls_rng = np.random.default_rng([int(start), i // _CLASS_SIZE])
        hour = int(cls_rng.integers(9, 16))
        meetings = [start + d * DAY + (hour - a.tz) * 3600 for d in range(int(days))
                    if (int((start + d * DAY) // DAY) + 3) % 7 < 5]
        chosen = rng.choice(np.array(meetings), size=int(k))
        out.append(np.sort(chosen + rng.uniform(0, 3000, int(k))))
    return out


def _add_accounts(plan: Plan, g: Group, gi: int, rng: np.random.Generator, start: float,
                  pool: tuple[str, ...], shared_pool: tuple[str, ...], s: Scenario) -> None:
    card = None
    for i in range(g.accounts):
        idx = len(plan.accounts)
        ident = _identity(g, gi, i, rng)
        created = _created(g, rng, start, i)
        if (g.accounts_per_payment > 1 and i % g.accounts_per_payment == 0) or card is None:
            card = f"pm-{rng.bytes(5).hex()}"
        payment = card if g.accounts_per_payment > 1 else (
            None if g.tier == "free" and rng.random() < 0.7 else f"pm-{rng.bytes(5).hex()}")
        if g.style == "enterprise-batch":  # one company card for its two accounts
            payment = f"pm-ent-{gi}-{i // 2}"
        org = f"org-{gi}-{i // 2}" if g.style in ("enterprise-batch", "saas") else None
        domain = _domain(g, gi, i, rng)
        acct = Account(idx, gi, ident, created, payment, domain, org, f"key-{rng.bytes(4).hex()}",
                       network.TZ.get(ident.country, 0.0))
        if g.network in ("proxy-pool",):
            acct.proxy_pool, acct.proxy_share = pool, 1.0
        elif g.style == "chat" and shared_pool and rng.random() < s.proxy_benign_share:
            acct.proxy_pool, acct.proxy_share = shared_pool, 0.8  # a VPN-style proxy customer
        plan.accounts.append(acct)


def _identity(g: Group, gi: int, i: int, rng: np.random.Generator) -> network.Identity:
    if g.network == "campus-nat":
        cls = np.random.default_rng([gi, i // _CLASS_SIZE])
        nat = network.ip_in(network.CAMPUS_ASN, cls)
        return network.Identity((nat,), network.CAMPUS_ASN, "US", str(rng.choice(network.BROWSER_UAS)),
                                network.TLS_FPS[0])
    if g.network == "cloud":
        return network.cloud(rng)
    if g.network == "proxy-pool":  # one tooling stack per campaign
        tool = np.random.default_rng([gi, 7])
        return network.Identity((), 0, str(tool.choice(network.COUNTRIES)),
                                str(tool.choice(network.SDK_UAS)), str(tool.choice(network.TLS_FPS)))
    if g.network == "fresh":
        asn = int(rng.choice(network.RESIDENTIAL_ASNS + network.CLOUD_ASNS))
        return network.Identity((network.ip_in(asn, rng),), asn, str(rng.choice(network.COUNTRIES)),
                                str(rng.choice(network.SDK_UAS + network.BROWSER_UAS)),
                                str(rng.choice(network.TLS_FPS)))
    return network.consumer(rng)


def _created(g: Group, rng: np.random.Generator, start: float, i: int) -> float:
    if g.is_attack:
        if g.ageing_days:
            return start - g.ageing_days * DAY - float(rng.uniform(0, 5 * DAY))
        # created in bursts shortly before (or during) the campaign
        return start + float(rng.uniform(-3, 2) * DAY) + (i % 7) * 60.0
    if g.style == "classroom":
        return start - 25 * DAY + float(rng.uniform(0, 2 * DAY))
    return start - float(rng.uniform(2, 500)) * DAY


def _domain(g: Group, gi: int, i: int, rng: np.random.Generator) -> str:
    if g.style == "classroom":
        return f"univ{gi}-{i // _CLASS_SIZE}.edu"
    if g.style in ("developer", "enterprise-batch", "saas"):
        return f"company{int(rng.integers(0, 10_000))}.com"
    if g.style == "researcher":
        return f"lab{int(rng.integers(0, 50))}.ac.uk"
    if g.is_attack:
        return str(rng.choice((*_WEBMAIL, f"mail{gi}.top", f"inbox{gi}.xyz")))
    return str(rng.choice(_WEBMAIL))
