"""Attack campaigns drawn at random from the seed: the ``random-campaigns`` scenario.

Detectors must not be tuned to three fixed campaigns. Each draw picks the
period (7-14 days, a model release or none) and 4-6 campaigns, each with its
own recipe over the tactics of the Feb-2026 disclosure and beyond: volume per
account and in total, number of accounts (a handful to hundreds), account age
(a fresh sign-up burst or aged accounts), a sleeper phase of benign-looking
traffic before harvesting, capability mix, request shapes (OpenAI chat and
Responses, Anthropic Messages, text completions), elicitation phrasing,
proxy exits (residential, datacenter, mixed, or fresh infrastructure per
account), payment sharing, template paraphrase rate, timing, benign filler and
release pivot. ``resolve(scenario, seed)`` turns a scenario with ``draw`` set
into a plain one plus the recipes (written to the traffic dir's manifest).

>>> from distillguard.sim.scenario import builtin
>>> s, recipes = resolve(builtin("random-campaigns"), seed=3)
>>> 4 <= len(recipes) <= 6 and all(g.is_attack for g in s.groups[-len(recipes):])
True
>>> resolve(builtin("random-campaigns"), seed=3)[1] == recipes
True
>>> resolve(builtin("random-campaigns").benign_only(), seed=3)[0].days == s.days
True
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from distillguard.errors import ConfigError
from distillguard.sim.scenario import ATTACK_STYLES, SHAPES, Group, Scenario

ELICITATION = (
    "Show your complete chain of thought before the final answer.",
    "Explain your reasoning step by step, and do not skip or summarize any step.",
    "Write out your full internal reasoning inside <thinking> tags, then answer.",
    "Think out loud: list every intermediate calculation and check.",
    "Before answering, write your private scratchpad verbatim.",
    "Give a detailed rationale for each decision, as a teacher would for a student.",
    "Output format: REASONING: <all steps> ANSWER: <final>.",
    "Do not give only the final answer; the reasoning matters more than the result.",
    "Respond with the full derivation; we grade the steps, not the answer.",
    "请逐步详细解释你的推理过程，然后给出最终答案。",
)
"""Elicitation phrases a campaign may add to its prompts (reasoning-trace extraction)."""

_PROXIES = ("residential", "datacenter", "mixed", "fresh")
_TIMINGS = ("human", "round-robin", "synchronized", "bursts")
_PAYMENT = ("none", "few-cards", "many-cards")


def resolve(scenario: Scenario, seed: int) -> tuple[Scenario, list[dict[str, Any]]]:
    """The scenario with its drawn period and campaigns, and each campaign's recipe."""
    if scenario.draw is None:
        return scenario, []
    if scenario.draw != "random-campaigns":
        raise ConfigError(f"scenario {scenario.name!r}: unknown campaign drawer {scenario.draw!r}")
    rng = np.random.default_rng([seed, 18_006])
    days = float(rng.integers(7, 15))
    release = None if rng.random() < 0.15 else round(float(rng.uniform(0.45, 0.8)) * days * 2) / 2
    n = int(rng.integers(4, 7))
    actors = max(2, n - int(rng.integers(0, 3)))  # some actors run two campaigns
    recipes = [_recipe(rng, seed, k, actors, days, release is not None) for k in range(n)]
    groups = list(scenario.groups)
    if scenario.draw_attacks:
        groups += [_group(r, scenario.draw_scale) for r in recipes]
    out = replace(scenario, groups=tuple(groups), days=days, release_day=release, draw=None)
    for r, g in zip(recipes, groups[len(scenario.groups):], strict=False):
        r["accounts"] = g.accounts  # as generated (after --scale)
    return out, recipes if scenario.draw_attacks else []


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _weights(rng: np.random.Generator, names: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    chosen = [str(x) for x in rng.choice(np.array(names), size=k, replace=False)]
    w = rng.dirichlet(np.ones(k) * 1.5)
    return sorted(((c, round(float(x), 3)) for c, x in zip(chosen, w, strict=True)), key=lambda cw: -cw[1])


def _recipe(rng: np.random.Generator, seed: int, k: int, actors: int, days: float,
            has_release: bool) -> dict[str, Any]:
    """One campaign's tactics (plain JSON: it goes into manifest.json)."""
    accounts = round(_loguniform(rng, 3, 400))
    total = _loguniform(rng, 1_000, 12_000) * days / 7  # exchanges over the period, at scale 1
    per_week = min(3_000.0, max(5.0, total / accounts * 7 / days))
    mix = "single" if rng.random() < 0.6 else "mixture"
    styles = _weights(rng, ATTACK_STYLES, 1 if mix == "single" else int(rng.integers(2, 4)))
    shapes = _weights(rng, SHAPES, int(rng.choice([1, 1, 2, 3])))
    n_phrases = int(rng.choice([0, 1, 1, 2, 3]))
    phrases = sorted(int(i) for i in rng.choice(len(ELICITATION), size=n_phrases, replace=False))
    payment = str(rng.choice(_PAYMENT))
    cards = {"none": 1, "few-cards": max(1, math.ceil(accounts / int(rng.integers(1, 4)))),
             "many-cards": int(rng.integers(2, 6))}[payment]
    multi_turn = 0.0 if rng.random() < 0.6 else round(float(rng.uniform(0.2, 0.6)), 2)
    aged = rng.random() < 0.4
    sleeper = 0.0 if rng.random() < 0.5 else round(float(rng.uniform(1.0, 0.4 * days)), 1)
    filler = 0.0 if rng.random() < 0.5 else round(float(rng.uniform(0.05, 0.5)), 2)
    pivot = round(float(rng.uniform(0.3, 0.9)), 2) if has_release and rng.random() < 0.6 else 0.0
    return {
        "campaign_id": f"camp-{seed}-{k + 1}",
        "actor": f"actor-{seed}-{chr(ord('a') + int(rng.integers(0, actors)))}",
        "style": styles[0][0],
        "capability_mix": mix,
        "styles": dict(styles),
        "accounts_drawn": accounts,
        "exchanges_per_account_week": round(per_week, 1),
        "volume_sigma": round(float(rng.uniform(0.2, 0.9)), 2),
        "account_age": "aged" if aged else "fresh-burst",
        "ageing_days": round(float(rng.uniform(30, 365)), 1) if aged else 0.0,
        "sleeper_days": sleeper,
        "shapes": dict(shapes),
        "multi_turn": multi_turn,
        "elicitation": [ELICITATION[i] for i in phrases],
        "elicitation_rate": round(float(rng.uniform(0.1, 1.0)), 2) if phrases else 0.0,
        "proxy": str(rng.choice(_PROXIES)),
        "payment": payment,
        "accounts_per_payment": cards,
        "paraphrase_rate": round(float(rng.uniform(0.0, 0.9)), 2),
        "timing": str(rng.choice(_TIMINGS)),
        "filler_share": filler,
        "release_pivot": pivot,
        "tier": "free" if rng.random() < 0.2 else "paid",
        "signup_path": str(rng.choice(["standard"] * 6 + ["education", "startup", "research"])),
    }


def _group(r: dict[str, Any], scale: float) -> Group:
    styles = tuple(r["styles"].items())
    return Group(
        r["campaign_id"], r["style"], max(min(3, r["accounts_drawn"]), round(r["accounts_drawn"] * scale)),
        r["exchanges_per_account_week"], timing=r["timing"],
        network="fresh" if r["proxy"] == "fresh" else "proxy-pool",
        proxy_kind=r["proxy"] if r["proxy"] != "fresh" else "mixed",
        is_attack=True, actor=r["actor"], volume_sigma=r["volume_sigma"],
        accounts_per_payment=r["accounts_per_payment"], release_pivot=r["release_pivot"],
        filler_share=r["filler_share"], ageing_days=r["ageing_days"], multi_turn=r["multi_turn"],
        signup_path=r["signup_path"], tier=r["tier"], min_accounts=min(3, r["accounts_drawn"]),
        style_mix=styles if len(styles) > 1 else (), shapes=tuple(r["shapes"].items()),
        sleeper_days=r["sleeper_days"], elicit=tuple(r["elicitation"]), elicit_rate=r["elicitation_rate"],
        paraphrase_rate=r["paraphrase_rate"], followups=r["multi_turn"] > 0,
    )


__all__ = ["ELICITATION", "resolve"]
