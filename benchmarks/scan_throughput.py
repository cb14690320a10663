"""End-to-end scan throughput and memory (ingest → enrich → features → score → link → publish).

    python benchmarks/scan_throughput.py [--exchanges 10000000] [--workdir DIR]

Simulates disclosure-2026 at the scale that gives the requested number of
exchanges (Parquet shards), then times `scan` on it with a benign reference of
the same scale. Target (detection issue): at least 20,000 exchanges/s with peak
memory under 8 GiB on this 2-core machine. Writes benchmarks/results/scan_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _common import machine, peak_rss_mib, timed, workdir, write_result

from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store

_EXCHANGES_AT_SCALE_1 = 59.5e6  # disclosure-2026 at scale 1 (see sim_throughput.py)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=float, default=10e6)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--memory-limit", default=None,
                    help="DuckDB memory limit of every store, e.g. 6GB (default: DuckDB's 80%% of RAM)")
    args = ap.parse_args()
    with workdir(args.workdir, "dg-scan-") as work:
        measure(args, work)


def measure(args: argparse.Namespace, work: Path) -> None:
    scale = args.exchanges / _EXCHANGES_AT_SCALE_1
    scenario = load_scenario("disclosure-2026").scaled(scale)
    result: dict[str, object] = {"scenario": "disclosure-2026", "scale": round(scale, 4), **machine()}
    stats = generate(scenario, work / "traffic", seed=0)
    # A reference a tenth the size: calibration needs benign accounts, not volume.
    generate(load_scenario("disclosure-2026").scaled(scale / 10).benign_only(), work / "reference", seed=100)
    result["duckdb_memory_limit"] = args.memory_limit or "default (80% of RAM)"
    if args.memory_limit:
        os.environ["DISTILLGUARD_MEMORY_LIMIT"] = args.memory_limit  # the reference's store too
    with timed(result, "scan_s"), Store.open(work / "s.duckdb") as store:
        scan(work / "traffic", work / "out", store, reference_dir=work / "reference")
    seconds = float(result["scan_s"])  # type: ignore[arg-type]
    result.update(exchanges=stats.exchanges, accounts=stats.accounts,
                  exchanges_per_second=round(stats.exchanges / seconds), peak_rss_mib=peak_rss_mib())
    rss = result["peak_rss_mib"]  # type: ignore[index]
    md = (
        "# Scan throughput\n\n"
        f"`python benchmarks/scan_throughput.py --exchanges {args.exchanges:.0f}` on {result['cpus']} CPUs "
        "(the time includes the reference's ingest and enrichment)\n\n"
        "| exchanges | accounts | scan s | exchanges/s | peak RSS of the benchmark process / largest child |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {stats.exchanges:,} | {stats.accounts:,} | {seconds:.0f} | {result['exchanges_per_second']:,} "
        f"| {rss['self']:.0f} / {rss['largest_child']:.0f} MiB |\n\n"  # type: ignore[index]
        f"DuckDB memory limit: {result['duckdb_memory_limit']}. Peak RSS covers the whole benchmark process, "
        "simulation included (its forked workers count as children).\n"
        "Target: at least 20,000 exchanges/s with peak memory under 8 GiB.\n"
    )
    write_result("scan_throughput", result, md)


if __name__ == "__main__":
    main()
