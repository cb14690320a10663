"""The lab's attacker: harvest a model through the gateway with many accounts, with the official ``openai`` client.

A measurement tool for defenders against their own servers: it sends a prompt
pool at a set total rate, round-robin over N accounts (one API key each), and
stores every outcome: the harvested pairs (answer and, when the upstream gave
it, the reasoning) and the refusals (403 blocked or challenged, 429 limited).
It talks only to loopback or to hosts the user lists (``allowed_url``) and has
no proxy rotation or other evasion: what it measures is what a defence costs a
plain harvester.

>>> HarvestSettings(base_url="http://127.0.0.1:8080/v1", api_keys=("sk-a",)).rate
5.0
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson

from distillguard.errors import ConfigError, InputError
from distillguard.lab.loopback import allowed_url

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class HarvestSettings:
    base_url: str
    api_keys: tuple[str, ...]
    model: str | None = None
    rate: float = 5.0  # requests per second, all accounts together
    concurrency: int = 4
    max_tokens: int = 160
    temperature: float = 0.0
    seed: int | None = None  # when set, prompt i is sent with seed + i: a sampled harvest repeats, however batched
    max_retries: int = 2  # the client's own retries (429 honours Retry-After)
    timeout: float = 120.0
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """One prompt's fate: ``status`` is ``ok`` or the HTTP status (``error`` without one)."""

    prompt: str
    account: int
    status: str
    answer: str | None = None
    reasoning: str | None = None
    code: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({k: v for k, v in self.__dict__.items() if v is not None})


@dataclass
class HarvestResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def pairs(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    def summary(self) -> dict[str, Any]:
        statuses = Counter(o.status for o in self.outcomes)
        pairs = self.pairs
        return {"sent": len(self.outcomes), "harvested": len(pairs),
                "with_reasoning": sum(1 for o in pairs if o.reasoning), "statuses": dict(sorted(statuses.items())),
                "seconds": round(self.seconds, 2)}


def harvest(prompts: Sequence[str], settings: HarvestSettings, *, out: Path | None = None,
            progress: Progress | None = None) -> HarvestResult:
    """Send every prompt once through ``settings.base_url``; outcomes in prompt order (and to ``out``, JSONL)."""
    allowed_url(settings.base_url, settings.allow_hosts)
    if not settings.api_keys:
        raise ConfigError("the harvest needs at least one API key (one per account)")
    if settings.rate <= 0 or settings.concurrency < 1:
        raise ConfigError("rate must be > 0 and concurrency >= 1")
    return asyncio.run(_harvest(list(prompts), settings, out, progress))


async def _harvest(prompts: list[str], s: HarvestSettings, out: Path | None,
                   progress: Progress | None) -> HarvestResult:
    clients = [openai.AsyncOpenAI(base_url=s.base_url, api_key=key, max_retries=s.max_retries, timeout=s.timeout)
               for key in s.api_keys]
    model = s.model or (await clients[0].models.list()).data[0].id
    results: list[Outcome | None] = [None] * len(prompts)
    sink = out.open("wb") if out is not None else None
    started = time.monotonic()
    gate = asyncio.Semaphore(s.concurrency)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        await asyncio.sleep(max(0.0, started + i / s.rate - time.monotonic()))  # paced start, not bursts
        async with gate:
            seed = None if s.seed is None else s.seed + i
            outcome = await _ask(clients[i % len(clients)], model, prompts[i], i % len(clients), s, seed)
        results[i] = outcome
        if sink is not None:
            sink.write(outcome.to_json() + b"\n")
            sink.flush()
        done += 1
        if progress:
            progress(done, len(prompts))

    try:
        await asyncio.gather(*(one(i) for i in range(len(prompts))))
    finally:
        if sink is not None:
            sink.close()
        for c in clients:
            await c.close()
    return HarvestResult([r for r in results if r is not None], time.monotonic() - started)


async def _ask(client: Any, model: str, prompt: str, account: int, s: HarvestSettings,
               seed: int | None = None) -> Outcome:
    extra = {"seed": seed} if seed is not None else {}
    try:
        resp = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=s.max_tokens,
            temperature=s.temperature, **extra)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return Outcome(prompt, account, str(exc.status_code), code=body.get("code"))
    except openai.APIError as exc:
        return Outcome(prompt, account, "error", code=type(exc).__name__)
    message = resp.choices[0].message
    return Outcome(prompt, account, "ok", message.content or "", getattr(message, "reasoning_content", None) or None)


def read_outcomes(path: Path) -> list[Outcome]:
    """Outcomes from a harvest JSONL file (``InputError`` naming the line when one is malformed)."""
    outcomes = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the harvest {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            outcomes.append(Outcome(row["prompt"], int(row.get("account", 0)), str(row.get("status", "ok")),
                                    row.get("answer"), row.get("reasoning"), row.get("code")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}:{n}: not a harvest record ({exc})") from exc
    return outcomes
