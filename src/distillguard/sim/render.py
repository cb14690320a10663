"""Render planned exchanges into rows of the exchange-log spec."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import numpy as np

from distillguard.sim import network, shapes, variety
from distillguard.sim.content import STYLE_BODIES
from distillguard.sim.datasets import Pools
from distillguard.sim.plan import DAY, Account
from distillguard.sim.scenario import Group, Scenario


class Renderer:
    """Turns plan rows into exchange dicts."""

    def __init__(self, scenario: Scenario, pools: Pools, accounts: list[Account], ids: list[str],
                 seed: int, start: float) -> None:
        self.s, self.pools, self.accounts, self.ids, self.seed = scenario, pools, accounts, ids, seed
        self.release = start + scenario.release_day * DAY if scenario.release_day is not None else None
        self.names = variety.proper_nouns(pools) if scenario.prompt_variety else ()

    def row(self, i: int, t: float, *, acct_index: int, variant: int, conv: int, turn: int,
            seq: int) -> dict[str, Any]:
        """Exchange number ``i``; depends only on its arguments (rows render in any order)."""
        acct = self.accounts[acct_index]
        g = self.s.groups[acct.group]
        r = random.Random(self.seed * 1_000_000_007 + i)
        conv_seed = conv if conv >= 0 else None
        ctx = {"account": acct_index, "variant": int(variant), "conv_seed": conv_seed, "turn": turn,
               "seq": seq + acct_index * 97, "hour_index": int((t + acct.tz * 3600) // 3600)}
        style = g.style
        if acct.harvest_from and t < acct.harvest_from:
            style = "chat"  # sleeper phase: benign-looking traffic before harvesting
        elif g.filler_share and r.random() < g.filler_share:
            style = "chat"  # mimicry filler
        elif g.style_mix:
            style = shapes.pick(g.style_mix, r)
        harvest = g.is_attack and style != "chat"
        pools = self.pools
        if self.s.prompt_variety and style not in variety.FIXED_STYLES:
            # A conversation's turns share its seed, so its opening prompt is varied alike in every turn.
            vseed = conv if conv_seed is not None else self.seed * 1_000_000_007 + i
            pools = variety.varied_pools(pools, random.Random(vseed * 7 + 3), rate=self.s.prompt_variety,
                                          names=self.names)
        if harvest and g.followups and conv_seed is not None and turn > 0:
            request, response = shapes.harvest_conversation(STYLE_BODIES[style], pools, r=r, ctx=ctx)
        else:
            request, response = STYLE_BODIES[style](pools, r, ctx)
        if harvest and g.elicit_rate and r.random() < g.elicit_rate:
            shapes.add_phrase(request, g.elicit[r.randrange(len(g.elicit))], r)
        if harvest and g.paraphrase_rate and r.random() < g.paraphrase_rate:
            shapes.paraphrase(request, r)
        request = {"model": self._model(t, g, r), **request}
        if r.random() < 0.3:
            request["stream"] = True
        text_len = sum(len(m["content"]) if isinstance(m["content"], str) else 60
                       for m in request["messages"])
        response["usage"]["input_tokens"] = max(1, int(text_len / 4 * r.uniform(0.9, 1.1)))
        if r.random() < 0.004:
            response = {"status": 429, "finish_reason": None, "content": None, "reasoning_content": None,
                        "tool_calls": [], "usage": None, "latency_ms": 3}
        endpoint = None
        if g.shapes:
            request, endpoint = shapes.reshape(request, shapes.pick(g.shapes, r))
        row = {
            "exchange_id": f"ex-{i:010d}",
            "timestamp": datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "account_id": self.ids[acct_index],
            "api_key_id": acct.api_key,
            "client": self._client(acct, r),
            "request": request,
            "response": response,
            "conversation_id": f"conv-{conv_seed:012x}" if conv_seed is not None else None,
        }
        if endpoint is not None:
            row["endpoint"] = endpoint
        return row

    def _model(self, t: float, g: Group, r: random.Random) -> str:
        if self.release is None or t < self.release:
            return self.s.old_model
        days = (t - self.release) / DAY
        share = g.release_pivot if g.release_pivot >= 0.3 else min(0.9, g.release_pivot + 0.04 * days)
        return self.s.new_model if r.random() < share else self.s.old_model

    def _client(self, acct: Account, r: random.Random) -> dict[str, Any]:
        ident = acct.identity
        if acct.proxy_pool and r.random() < acct.proxy_share:
            ip = acct.proxy_pool[r.randrange(len(acct.proxy_pool))]
            asn = network.asn_of(ip)
        else:
            ip = ident.ips[r.randrange(len(ident.ips))] if ident.ips else ""
            asn = ident.asn
        return {"ip": ip, "asn": asn, "country": ident.country, "user_agent": ident.user_agent,
                "tls_fingerprint": ident.tls}


def shuffled_ids(n: int, seed: int) -> list[str]:
    """Account ids in a random order, so ids say nothing about the group."""
    rng = np.random.default_rng([seed, 99])
    codes = rng.choice(np.arange(100_000, 100_000 + max(10 * n, 1000)), size=n, replace=False)
    return [f"acct-{c:07d}" for c in codes]
