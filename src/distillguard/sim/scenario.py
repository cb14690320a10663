"""Declarative traffic scenarios: benign populations and attack campaigns.

A scenario is a frozen dataclass (or the same fields in a TOML file), so users
can write their own. ``scaled(x)`` multiplies account counts; per-account
behaviour stays the same, so ``--scale 0.001`` of ``disclosure-2026`` is a
thousandth of the accounts and traffic, each account as busy as at full scale.

>>> s = builtin("disclosure-2026")
>>> sum(g.accounts for g in s.groups if g.is_attack)
24000
>>> builtin("demo").scaled(2.0).groups[0].accounts == 2 * builtin("demo").groups[0].accounts
True
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError

STYLES = (
    # benign
    "chat", "developer", "enterprise-batch", "eval-harness", "classroom", "saas", "researcher",
    # attack
    "agentic-coding", "capability-targeted", "reasoning-traces",
)
ATTACK_STYLES = ("agentic-coding", "capability-targeted", "reasoning-traces")
TIMINGS = ("human", "cron", "bursts", "round-robin", "synchronized")
NETWORKS = ("residential", "cloud", "campus-nat", "proxy-pool", "fresh")
SHAPES = ("chat", "responses", "messages", "completions")
"""Request shapes: OpenAI Chat Completions, OpenAI Responses, Anthropic Messages, text completions."""
PROXY_KINDS = ("mixed", "residential", "datacenter")


@dataclass(frozen=True)
class Group:
    """One benign population or one attack campaign."""

    name: str  # population name (benign) or campaign id (attack)
    style: str  # content style, one of STYLES
    accounts: int
    exchanges_per_account: float  # median per account per 7 days (lognormal, see volume_sigma)
    timing: str = "human"
    network: str = "residential"
    is_attack: bool = False
    actor: str | None = None
    volume_sigma: float = 0.8  # lognormal spread of per-account volume
    accounts_per_payment: int = 1  # >1: payment fingerprints shared by that many accounts
    release_pivot: float = 0.05  # share moved to the new model within 24 h of a release
    filler_share: float = 0.0  # mimicry: share of benign-looking filler prompts
    ageing_days: float = 0.0  # accounts created this long before first use
    multi_turn: float = 0.0  # probability that a session is a multi-turn conversation
    signup_path: str = "standard"
    tier: str = "paid"
    min_accounts: int = 1  # floor when scaled down
    # Optional tactics (the defaults leave every earlier scenario's output unchanged):
    style_mix: tuple[tuple[str, float], ...] = ()  # per-exchange (style, weight) mixture instead of ``style``
    shapes: tuple[tuple[str, float], ...] = ()  # (shape, weight) over SHAPES; rows then carry ``endpoint``
    sleeper_days: float = 0.0  # benign-looking traffic for this long before harvesting starts
    elicit: tuple[str, ...] = ()  # extra elicitation phrases added to harvest prompts
    elicit_rate: float = 0.0  # share of harvest prompts that get one of ``elicit``
    # Share of requests off the account's main template variant, their wording also paraphrased;
    # None: the original behaviour (20% off the main variant, no rewording).
    paraphrase_rate: float | None = None
    proxy_kind: str = "mixed"  # exits of a proxy-pool network, one of PROXY_KINDS
    followups: bool = False  # multi-turn harvest sessions ask follow-ups ("continue", "more detail")

    def __post_init__(self) -> None:
        # TOML gives lists: store tuples so the dataclass stays immutable.
        object.__setattr__(self, "style_mix", tuple((str(a), float(b)) for a, b in self.style_mix))
        object.__setattr__(self, "shapes", tuple((str(a), float(b)) for a, b in self.shapes))
        object.__setattr__(self, "elicit", tuple(str(e) for e in self.elicit))
        checks = [("style", self.style, STYLES), ("timing", self.timing, TIMINGS),
                  ("network", self.network, NETWORKS), ("proxy_kind", self.proxy_kind, PROXY_KINDS)]
        checks += [("style_mix", st, STYLES) for st, _ in self.style_mix]
        checks += [("shapes", sh, SHAPES) for sh, _ in self.shapes]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ConfigError(f"group {self.name!r}: {name} {value!r} is not one of {allowed}")
        for name, rate in (("elicit_rate", self.elicit_rate), ("paraphrase_rate", self.paraphrase_rate or 0.0),
                           ("filler_share", self.filler_share)):
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"group {self.name!r}: {name} {rate} is not between 0 and 1")
        if any(w < 0 for _, w in (*self.style_mix, *self.shapes)) or self.sleeper_days < 0:
            raise ConfigError(f"group {self.name!r}: weights and sleeper_days must not be negative")
        if self.accounts < 0 or self.exchanges_per_account <= 0:
            raise ConfigError(f"group {self.name!r}: accounts and volume must be positive")


@dataclass(frozen=True)
class Scenario:
    name: str
    groups: tuple[Group, ...]
    start: str = "2026-02-02T00:00:00Z"  # a Monday
    days: float = 7.0
    release_day: float | None = 4.5  # a model_release event this many days in
    old_model: str = "frontier-2"
    new_model: str = "frontier-3"
    proxy_benign_share: float = 0.01  # share of consumer accounts that use the attackers' proxy exits
    # Campaigns drawn from the seed at generation time (``sim.recipes``): the drawer's name, or None.
    draw: str | None = None
    draw_attacks: bool = True  # False: draw the period (days, release) but leave the campaigns out
    draw_scale: float = 1.0  # account multiplier for the drawn campaigns
    # Share of pool prompts varied as real users vary them (``sim.variety``); 0: the prompts as they stand.
    prompt_variety: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.prompt_variety <= 1.0:
            raise ConfigError(f"scenario {self.name!r}: prompt_variety {self.prompt_variety} is not between 0 and 1")

    def benign_only(self) -> Scenario:
        """The same scenario without its campaigns: reference traffic for calibration."""
        return replace(self, name=f"{self.name}-benign", groups=tuple(g for g in self.groups if not g.is_attack),
                       draw_attacks=False)

    def scaled(self, factor: float) -> Scenario:
        if factor <= 0:
            raise ConfigError(f"scale must be positive, got {factor}")
        return replace(self, groups=tuple(
            replace(g, accounts=max(g.min_accounts, round(g.accounts * factor))) for g in self.groups),
            draw_scale=self.draw_scale * factor)


def _benign(scale: float, heavy: bool = False) -> list[Group]:
    def n(k: int) -> int:
        return max(1, round(k * scale))

    return [
        Group("chat", "chat", n(1500), 25, multi_turn=0.45, tier="free", min_accounts=5),
        Group("developer", "developer", n(250), 150, network="cloud", volume_sigma=1.1),
        Group("enterprise-batch", "enterprise-batch", n(8), 4000 if heavy else 2500, timing="cron",
              network="cloud", volume_sigma=0.5, signup_path="enterprise", release_pivot=0.0),
        Group("eval-harness", "eval-harness", n(20), 900, timing="bursts", network="cloud",
              signup_path="research", release_pivot=0.6),
        Group("classroom", "classroom", n(90), 30, timing="synchronized", network="campus-nat",
              signup_path="education", tier="free", accounts_per_payment=1, min_accounts=6),
        Group("saas", "saas", n(6), 5000, network="cloud", volume_sigma=0.6, signup_path="startup"),
        Group("researcher", "researcher", n(40), 120, multi_turn=0.3, signup_path="research"),
    ]


def _disclosure() -> Scenario:
    attacks = [
        # Volumes per week chosen so 14 days give the disclosure's totals: 13M, 3.4M, 150k.
        Group("camp-agentic", "agentic-coding", 19000, 327, timing="round-robin", network="proxy-pool",
              is_attack=True, actor="actor-a", volume_sigma=0.3, accounts_per_payment=12,
              release_pivot=0.5, min_accounts=12),
        Group("camp-capability", "capability-targeted", 4500, 361, timing="synchronized",
              network="proxy-pool", is_attack=True, actor="actor-b", volume_sigma=0.3,
              accounts_per_payment=8, min_accounts=8),
        Group("camp-traces", "reasoning-traces", 500, 143, timing="round-robin", network="proxy-pool",
              is_attack=True, actor="actor-c", volume_sigma=0.3, accounts_per_payment=5, min_accounts=5),
    ]
    return Scenario("disclosure-2026", tuple(_benign(100.0) + attacks), days=14, release_day=9.5)


def _demo() -> Scenario:
    attacks = [
        Group("camp-agentic", "agentic-coding", 30, 400, timing="round-robin", network="proxy-pool",
              is_attack=True, actor="actor-a", volume_sigma=0.3, accounts_per_payment=6, release_pivot=0.5),
        Group("camp-capability", "capability-targeted", 16, 350, timing="synchronized",
              network="proxy-pool", is_attack=True, actor="actor-b", volume_sigma=0.3,
              accounts_per_payment=4),
        Group("camp-traces", "reasoning-traces", 8, 150, timing="round-robin", network="proxy-pool",
              is_attack=True, actor="actor-c", volume_sigma=0.3, accounts_per_payment=4),
    ]
    benign = _benign(0.2)
    return Scenario("demo", tuple(benign + attacks), days=7, release_day=4.5)


def _hard_negatives() -> Scenario:
    benign = _benign(0.4, heavy=True)
    benign = [replace(g, accounts=g.accounts * 3) if g.style in
              ("enterprise-batch", "eval-harness", "classroom", "saas", "researcher") else g for g in benign]
    attacks = [Group("camp-traces", "reasoning-traces", 12, 200, timing="round-robin",
                     network="proxy-pool", is_attack=True, actor="actor-c", volume_sigma=0.3,
                     accounts_per_payment=4)]
    return Scenario("hard-negatives", tuple(benign + attacks), days=7)


def _evasive() -> Scenario:
    attacks = [
        # slow-and-low: many accounts, each below the benign chat median
        Group("camp-slow", "agentic-coding", 120, 15, timing="human", network="proxy-pool",
              is_attack=True, actor="actor-a", volume_sigma=0.4, accounts_per_payment=10,
              release_pivot=0.5),
        # mimicry: benign filler and human timing
        Group("camp-mimic", "capability-targeted", 20, 250, timing="human", network="proxy-pool",
              is_attack=True, actor="actor-b", filler_share=0.4, multi_turn=0.3),
        # fresh infrastructure per account, aged accounts
        Group("camp-fresh", "reasoning-traces", 15, 200, timing="round-robin", network="fresh",
              is_attack=True, actor="actor-c", ageing_days=60, volume_sigma=0.4),
    ]
    return Scenario("evasive", tuple(_benign(0.3) + attacks), days=7)


# Request shapes of the benign populations in scenarios that vary shapes, so that no shape
# is a tell of an attacker: eval harnesses and batch jobs use text completions too.
_BENIGN_SHAPES: dict[str, tuple[tuple[str, float], ...]] = {
    "chat": (("chat", 0.75), ("messages", 0.15), ("responses", 0.1)),
    "developer": (("chat", 0.45), ("responses", 0.25), ("messages", 0.25), ("completions", 0.05)),
    "enterprise-batch": (("chat", 0.5), ("completions", 0.3), ("responses", 0.2)),
    "eval-harness": (("completions", 0.4), ("chat", 0.4), ("messages", 0.2)),
    "classroom": (("chat", 0.85), ("messages", 0.15)),
    "saas": (("chat", 0.5), ("messages", 0.5)),
    "researcher": (("chat", 0.4), ("messages", 0.4), ("responses", 0.2)),
}


def _random_campaigns() -> Scenario:
    """Usual benign populations; 4-6 campaigns, period and release drawn from the seed (``sim.recipes``)."""
    benign = [replace(g, shapes=_BENIGN_SHAPES[g.style]) for g in _benign(0.4)]
    return Scenario("random-campaigns", tuple(benign), days=7, release_day=4.5, draw="random-campaigns")


_BUILTIN = {"demo": _demo, "disclosure-2026": _disclosure, "hard-negatives": _hard_negatives,
            "evasive": _evasive, "random-campaigns": _random_campaigns}
BUILTIN_NAMES = tuple(_BUILTIN)


def builtin(name: str) -> Scenario:
    if name not in _BUILTIN:
        raise ConfigError(f"unknown scenario {name!r}; built-in: {', '.join(_BUILTIN)} (or a .toml file)")
    return _BUILTIN[name]()


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or one described in a TOML file.

    The TOML has the ``Scenario`` fields at top level and ``[[groups]]`` tables
    with the ``Group`` fields.
    """
    path = Path(name_or_path)
    if path.suffix != ".toml":
        return builtin(str(name_or_path))
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"scenario file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        groups = tuple(Group(**g) for g in data.pop("groups", []))
        return Scenario(groups=groups, **data)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


__all__ = ["ATTACK_STYLES", "BUILTIN_NAMES", "PROXY_KINDS", "SHAPES", "Group", "Scenario", "builtin", "load_scenario"]
