"""Enrichment cost per distinct prompt, one core, enricher by enricher.

    python benchmarks/enrich_cost.py [--exchanges 200000] [--prompts 20000] [--workdir DIR]
                                     [--label TEXT] [--profile]

Simulates disclosure-2026 with ``prompt_variety`` 1 (``sim.variety``) at the
scale giving ``--exchanges``, ingests it, and enriches ``--prompts`` exchanges
with distinct prompts (so no memo helps) in this process: each enricher alone
(fresh, the best of three runs, in registry order) and all together as the
scan's workers do (``enrich_to_signals``). Times are CPU seconds of this
process (``time.process_time``, Arrow held to one thread), so that other
work on a shared machine disturbs them less than wall time. ``--profile`` adds the functions
where the time goes (cProfile, own time). Each run is added to the history in
benchmarks/results/enrich_cost.{json,md} under ``--label``, so every change
is measured on the same prompts.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from _common import RESULTS, machine, workdir, write_result

import distillguard
from distillguard.ingest import ingest_traffic_dir
from distillguard.signals import INPUT_COLUMNS, base, registered_enrichers
from distillguard.signals.parallel import enrich_to_signals
from distillguard.sim import generate, load_scenario
from distillguard.store import Store

_EXCHANGES_AT_SCALE_1 = 59.5e6  # disclosure-2026 at scale 1 (see sim_throughput.py)
_REPEATS = 5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=float, default=200_000)
    ap.add_argument("--prompts", type=int, default=20_000)
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the traffic and its store here")
    ap.add_argument("--label", default="current", help="name of this run in the history")
    ap.add_argument("--profile", action="store_true", help="also profile the whole enrichment (cProfile)")
    args = ap.parse_args()
    with workdir(args.workdir, "dg-enrich-") as work:
        measure(args, work)


def distinct_sample(args: argparse.Namespace, work: Path) -> tuple[pa.RecordBatch, int, int]:
    """``--prompts`` exchanges with distinct prompts, and the traffic's (exchanges, distinct prompts)."""
    db, marker = work / "e.duckdb", work / "ingested.json"
    if not marker.exists() or json.loads(marker.read_text()) != {"exchanges": args.exchanges}:
        db.unlink(missing_ok=True)
        scenario = replace(load_scenario("disclosure-2026").scaled(args.exchanges / _EXCHANGES_AT_SCALE_1),
                           prompt_variety=1.0)
        generate(scenario, work / "traffic", seed=0)
        with Store.open(db) as store:
            ingest_traffic_dir(work / "traffic", store)
        marker.write_text(json.dumps({"exchanges": args.exchanges}))
    with Store.open(db, read_only=True) as store:
        counts = store.query("SELECT count(*) AS n, count(DISTINCT hash(prompt_text)) AS d FROM exchanges")
        n, distinct = counts.column("n")[0].as_py(), counts.column("d")[0].as_py()
        sample = store.query(
            f"SELECT {', '.join(INPUT_COLUMNS)} FROM exchanges "
            "QUALIFY row_number() OVER (PARTITION BY hash(prompt_text) ORDER BY exchange_id) = 1 "
            f"ORDER BY hash(exchange_id) LIMIT {args.prompts + 100}")
    return sample.combine_chunks().to_batches()[0], int(n), int(distinct)


def _fresh() -> None:
    """Forget every memo and shared decoding, keeping the loaded models."""
    registered_enrichers.cache_clear()
    base._recent.clear()


def measure(args: argparse.Namespace, work: Path) -> None:
    pa.set_cpu_count(1)
    sample, exchanges, distinct = distinct_sample(args, work)
    enrich_to_signals(sample.slice(0, 100))  # models trained and loaded before timing
    batch = sample.slice(100)
    rows = batch.num_rows
    per_enricher: dict[str, float] = {}
    for _ in range(_REPEATS):
        _fresh()
        current = batch
        for enricher in registered_enrichers():
            start = time.process_time()
            current = enricher.enrich(current)
            us = (time.process_time() - start) / rows * 1e6
            per_enricher[enricher.name] = min(per_enricher.get(enricher.name, us), us)
    totals = []
    for _ in range(_REPEATS):
        _fresh()
        start = time.process_time()
        enrich_to_signals(batch)
        totals.append((time.process_time() - start) / rows * 1e6)
    top: list[dict[str, Any]] = []
    if args.profile:
        _fresh()
        prof = cProfile.Profile()
        prof.enable()
        enrich_to_signals(batch)
        prof.disable()
        stats = pstats.Stats(prof)
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        rows_ = sorted(raw.items(), key=lambda kv: -kv[1][2])[:20]
        top = [{"function": f"{Path(f).name}:{line} {name}", "own_us_per_prompt": round(v[2] / rows * 1e6, 1),
                "cumulative_us_per_prompt": round(v[3] / rows * 1e6, 1)} for (f, line, name), v in rows_]
        stats.sort_stats("tottime").print_stats(25)
    code = Path(distillguard.__file__).parent  # the code measured, which PYTHONPATH may take from elsewhere
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=code).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "."], capture_output=True, text=True, cwd=code).stdout:
        commit += "+changes"
    run = {"label": args.label, "commit": commit, "prompts": rows,
           "enrich_us_per_prompt": round(min(totals), 1),
           "per_enricher_us": {k: round(v, 1) for k, v in per_enricher.items()}}
    if top:
        run["profile_top"] = top
    history_file = RESULTS / "enrich_cost.json"
    old = json.loads(history_file.read_text()).get("history", []) if history_file.exists() else []
    history = [h for h in old if h["label"] != args.label] + [run]
    result = {**machine(), "scenario": "disclosure-2026", "prompt_variety": 1.0, "exchanges": exchanges,
              "distinct_prompts": distinct, "distinct_share": round(distinct / exchanges, 4), "history": history}
    names = list(run["per_enricher_us"])  # type: ignore[arg-type]
    lines = [
        "# Enrichment cost per distinct prompt\n",
        f"`python benchmarks/enrich_cost.py --exchanges {args.exchanges:.0f} --prompts {args.prompts}` on one core: "
        f"disclosure-2026 with prompt variety 1 ({exchanges:,} exchanges, {distinct:,} distinct prompts, "
        f"{distinct / exchanges:.1%}); {rows:,} exchanges with distinct prompts enriched with no memo to help, "
        "each enricher alone and all together (best of five runs). CPU µs per exchange; timings on a shared "
        "2-core machine are indicative.\n",
        "| run | commit | all | " + " | ".join(names) + " |",
        "|---|---|---:|" + "---:|" * len(names),
    ]
    for h in history:
        lines.append(f"| {h['label']} | {h['commit']} | {h['enrich_us_per_prompt']:.0f} | "
                     + " | ".join(f"{h['per_enricher_us'].get(n, 0):.0f}" for n in names) + " |")
    if top:
        lines += ["", f"Where the time goes ({args.label}; cProfile, own µs per prompt): "
                  + "; ".join(f"{t['function']} {t['own_us_per_prompt']}" for t in top[:10]) + "."]
    write_result("enrich_cost", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
