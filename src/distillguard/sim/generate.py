"""Generate a traffic directory from a scenario, streaming shards in time order."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from distillguard.errors import ConfigError
from distillguard.sim.datasets import find_data_dir, load_pools
from distillguard.sim.plan import DAY, build_plan, epoch
from distillguard.sim.render import Renderer, shuffled_ids
from distillguard.sim.scenario import Scenario
from distillguard.sim.writer import ShardWriter, write_jsonl

FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class GenerateStats:
    exchanges: int
    accounts: int
    attack_accounts: int
    attack_exchanges: int


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def generate(
    scenario: Scenario, out_dir: Path, *, seed: int = 0, fmt: str = "parquet",
    data_dir: Path | None = None, rows_per_shard: int = 250_000, chunk_rows: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateStats:
    """Write ``out_dir`` (replacing any earlier simulator output there)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    pools = load_pools(find_data_dir(data_dir))
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir / "exchanges", ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(scenario, seed)
    arrays = plan.arrays()
    ids = shuffled_ids(len(plan.accounts), seed)
    start = epoch(scenario.start)
    renderer = Renderer(scenario, pools, plan.accounts, ids, seed, start)
    writer = ShardWriter(out_dir, fmt, rows_per_shard)
    total = len(arrays["t"])
    for lo in range(0, total, chunk_rows):
        hi = min(total, lo + chunk_rows)
        rows = [renderer.row(i, float(arrays["t"][i]), int(arrays["account"][i]), int(arrays["variant"][i]))
                for i in range(lo, hi)]
        writer.write(rows)
        if progress:
            progress(hi - lo, total)
    writer.close()
    groups = scenario.groups
    write_jsonl(out_dir / "accounts.jsonl", [
        {"account_id": ids[a.index], "created_at": _iso(a.created_at),
         "signup_path": groups[a.group].signup_path, "tier": groups[a.group].tier,
         "payment_fingerprint": a.payment, "email_domain": a.email_domain,
         "country": a.identity.country, "organization_id": a.organization}
        for a in sorted(plan.accounts, key=lambda a: ids[a.index])])
    write_jsonl(out_dir / "labels.jsonl", [
        {"account_id": ids[a.index], "is_attack": groups[a.group].is_attack,
         "campaign_id": groups[a.group].name if groups[a.group].is_attack else None,
         "actor": groups[a.group].actor, "style": groups[a.group].style,
         "population": None if groups[a.group].is_attack else groups[a.group].name}
        for a in sorted(plan.accounts, key=lambda a: ids[a.index])])
    events = []
    if scenario.release_day is not None:
        events.append({"timestamp": _iso(start + scenario.release_day * DAY), "type": "model_release",
                       "model": scenario.new_model})
    write_jsonl(out_dir / "events.jsonl", events)
    attack_accounts = {a.index for a in plan.accounts if groups[a.group].is_attack}
    attack_exchanges = int(sum(1 for x in arrays["account"] if int(x) in attack_accounts))
    (out_dir / "manifest.json").write_bytes(orjson.dumps({
        "scenario": scenario.name, "seed": seed, "format": fmt, "exchanges": total,
        "accounts": len(plan.accounts), "attack_accounts": len(attack_accounts),
        "attack_exchanges": attack_exchanges,
    }, option=orjson.OPT_INDENT_2))
    return GenerateStats(total, len(plan.accounts), len(attack_accounts), attack_exchanges)
