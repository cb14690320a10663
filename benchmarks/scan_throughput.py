"""End-to-end scan throughput and memory (ingest → enrich → features → score → link → publish).

    python benchmarks/scan_throughput.py [--exchanges 10000000] [--workdir DIR] [--memory-limit 6GB]

Simulates disclosure-2026 at the scale that gives the requested number of
exchanges (Parquet shards) and a benign reference a tenth its size, then runs
`distillguard -v scan` on it as its own process, timing each stage (from its
log) and sampling the resident memory of the scan and its worker processes
together. Target (detection issue): at least 20,000 exchanges/s with peak
memory under 8 GiB on this 2-core machine. With ``--workdir`` the traffic is
kept and reused by the next run. Writes benchmarks/results/scan_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import PeakTreeRss, machine, workdir, write_result

from distillguard.sim import generate, load_scenario

_EXCHANGES_AT_SCALE_1 = 59.5e6  # disclosure-2026 at scale 1 (see sim_throughput.py)
_STAGE = re.compile(r"distillguard\.pipeline: (.+) took ([\d.]+) s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=float, default=10e6)
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the simulated traffic here")
    ap.add_argument("--memory-limit", default=None,
                    help="DuckDB memory limit of every store, e.g. 6GB (default: DuckDB's 80%% of RAM)")
    args = ap.parse_args()
    with workdir(args.workdir, "dg-scan-") as work:
        measure(args, work)


def simulate(args: argparse.Namespace, work: Path) -> dict[str, int]:
    """The traffic and reference directories (reused when a previous run left them complete)."""
    stats_file = work / "traffic_stats.json"
    if stats_file.exists() and json.loads(stats_file.read_text()).get("requested") == args.exchanges:
        return dict(json.loads(stats_file.read_text()))
    scale = args.exchanges / _EXCHANGES_AT_SCALE_1
    stats = generate(load_scenario("disclosure-2026").scaled(scale), work / "traffic", seed=0)
    # A reference a tenth the size: calibration needs benign accounts, not volume.
    generate(load_scenario("disclosure-2026").scaled(scale / 10).benign_only(), work / "reference", seed=100)
    out = {"requested": args.exchanges, "exchanges": stats.exchanges, "accounts": stats.accounts}
    stats_file.write_text(json.dumps(out))
    return out


def measure(args: argparse.Namespace, work: Path) -> None:
    stats = simulate(args, work)
    for stale in work.glob("s.*duckdb*"):
        stale.unlink()
    env = dict(os.environ)
    if args.memory_limit:
        env["DISTILLGUARD_MEMORY_LIMIT"] = args.memory_limit  # the reference's store too
    cmd = [sys.executable, "-m", "distillguard", "-v", "scan", str(work / "traffic"), "--reference",
           str(work / "reference"), "--out", str(work / "out"), "--db", str(work / "s.duckdb")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    with PeakTreeRss(proc.pid) as rss:
        _, log = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"scan failed ({proc.returncode}):\n{log[-3000:]}")
    stages = {name: float(s) for name, s in _STAGE.findall(log)}
    result = {
        "scenario": "disclosure-2026", "scale": round(args.exchanges / _EXCHANGES_AT_SCALE_1, 4), **machine(),
        "exchanges": stats["exchanges"], "accounts": stats["accounts"], "scan_s": round(seconds, 1),
        "exchanges_per_second": round(stats["exchanges"] / seconds),
        "peak_rss_mib_scan_and_workers": round(rss.peak), "duckdb_memory_limit": args.memory_limit or "default",
        "stages_s": stages,
    }
    stage_text = "; ".join(f"{name} {s:.0f} s" for name, s in stages.items())
    md = (
        "# Scan throughput\n\n"
        f"`python benchmarks/scan_throughput.py --exchanges {args.exchanges:.0f}"
        f"{' --memory-limit ' + args.memory_limit if args.memory_limit else ''}` on {result['cpus']} CPUs: "
        "`distillguard -v scan` with a benign reference a tenth the size (its ingest and enrichment included)\n\n"
        "| exchanges | accounts | scan s | exchanges/s | peak memory, scan + workers |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {stats['exchanges']:,} | {stats['accounts']:,} | {seconds:.0f} | {result['exchanges_per_second']:,} "
        f"| {rss.peak:,.0f} MiB |\n\n"
        f"Stages: {stage_text}.\n\n"
        f"DuckDB memory limit: {result['duckdb_memory_limit']}. Memory is the resident set of the scan process and "
        "its worker processes summed, sampled every 0.5 s.\n"
        "Target: at least 20,000 exchanges/s with peak memory under 8 GiB.\n"
    )
    write_result("scan_throughput", result, md)


if __name__ == "__main__":
    main()
