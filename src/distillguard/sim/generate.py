"""Generate a traffic directory from a scenario, streaming shards in time order.

Planning (who sends when) happens once in NumPy; each shard of the time-ordered
plan is then rendered and written independently, so shards are produced in
parallel processes with bounded memory, and every row depends only on the seed
and its position: the output is the same whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from distillguard.errors import ConfigError
from distillguard.sim.datasets import find_data_dir, load_pools
from distillguard.sim.plan import DAY, Plan, build_plan, epoch
from distillguard.sim.recipes import resolve
from distillguard.sim.render import Renderer, shuffled_ids
from distillguard.sim.scenario import Scenario
from distillguard.sim.writer import ShardWriter, write_jsonl

FORMATS = ("parquet", "jsonl")
_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class GenerateStats:
    exchanges: int
    accounts: int
    attack_accounts: int
    attack_exchanges: int


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# Set in the parent before forking; workers read it (fork shares it copy-on-write).
_JOB: tuple[Renderer, dict[str, np.ndarray], Path, str, int] | None = None


def _write_shard(shard: int) -> int:
    """Render and write rows ``[shard * R, (shard + 1) * R)`` of the plan."""
    assert _JOB is not None  # internal invariant: set by generate() before any call
    renderer, arrays, out_dir, fmt, rows_per_shard = _JOB
    lo, hi = shard * rows_per_shard, min(len(arrays["t"]), (shard + 1) * rows_per_shard)
    writer = ShardWriter(out_dir, fmt, rows_per_shard, first_shard=shard)
    cols = [arrays[k] for k in ("t", "account", "variant", "conv", "turn", "seq")]
    for a in range(lo, hi, _CHUNK_ROWS):
        b = min(hi, a + _CHUNK_ROWS)
        writer.write([renderer.row(i, float(cols[0][i]), acct_index=int(cols[1][i]), variant=int(cols[2][i]),
                                   conv=int(cols[3][i]), turn=int(cols[4][i]), seq=int(cols[5][i]))
                      for i in range(a, b)])
    writer.close()
    return hi - lo


def generate(
    scenario: Scenario, out_dir: Path, *, seed: int = 0, fmt: str = "parquet",
    data_dir: Path | None = None, rows_per_shard: int = 200_000, workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateStats:
    """Write ``out_dir`` (replacing any earlier simulator output there).

    A scenario that draws its campaigns (``Scenario.draw``) draws them from ``seed``;
    their recipes go into ``manifest.json`` under ``campaigns``.
    """
    global _JOB
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    drawn = scenario.draw is not None
    scenario, recipes = resolve(scenario, seed)
    pools = load_pools(find_data_dir(data_dir))
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir / "exchanges", ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(scenario, seed)
    arrays = plan.arrays(np.array([g.multi_turn for g in scenario.groups] or [0.0]), seed)
    ids = shuffled_ids(len(plan.accounts), seed)
    start = epoch(scenario.start)
    total = len(arrays["t"])
    shards = range((total + rows_per_shard - 1) // rows_per_shard)
    _JOB = (Renderer(scenario, pools, plan.accounts, ids, seed, start), arrays, out_dir, fmt, rows_per_shard)
    workers = min(workers or os.cpu_count() or 1, len(shards)) or 1
    try:
        if workers > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(workers) as pool:
                for n in pool.imap_unordered(_write_shard, shards):
                    if progress:
                        progress(n, total)
        else:
            for shard in shards:
                n = _write_shard(shard)
                if progress:
                    progress(n, total)
    finally:
        _JOB = None
    _write_tables(scenario, plan, ids, out_dir, start)
    groups = scenario.groups
    is_attack = np.array([groups[a.group].is_attack for a in plan.accounts], dtype=bool)
    attack_exchanges = int(is_attack[arrays["account"]].sum()) if total else 0
    stats = GenerateStats(total, len(plan.accounts), int(is_attack.sum()), attack_exchanges)
    manifest = {"scenario": scenario.name, "seed": seed, "format": fmt, **stats.__dict__}
    if scenario.prompt_variety:
        manifest["prompt_variety"] = scenario.prompt_variety
    if drawn:
        manifest.update(days=scenario.days, release_day=scenario.release_day, campaigns=recipes)
    (out_dir / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return stats


def _write_tables(scenario: Scenario, plan: Plan, ids: list[str], out_dir: Path, start: float) -> None:
    """accounts, labels and events (small: one JSONL file each)."""
    groups = scenario.groups
    accounts = sorted(plan.accounts, key=lambda a: ids[a.index])
    write_jsonl(out_dir / "accounts.jsonl", [
        {"account_id": ids[a.index], "created_at": _iso(a.created_at),
         "signup_path": groups[a.group].signup_path, "tier": groups[a.group].tier,
         "payment_fingerprint": a.payment, "email_domain": a.email_domain,
         "country": a.identity.country, "organization_id": a.organization} for a in accounts])
    write_jsonl(out_dir / "labels.jsonl", [
        {"account_id": ids[a.index], "is_attack": groups[a.group].is_attack,
         "campaign_id": groups[a.group].name if groups[a.group].is_attack else None,
         "actor": groups[a.group].actor, "style": groups[a.group].style,
         "population": None if groups[a.group].is_attack else groups[a.group].name} for a in accounts])
    events = []
    if scenario.release_day is not None:
        events.append({"timestamp": _iso(start + scenario.release_day * DAY), "type": "model_release",
                       "model": scenario.new_model})
    write_jsonl(out_dir / "events.jsonl", events)
