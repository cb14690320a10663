"""Simulator throughput and memory: generate ~10M exchanges as Parquet shards.

    python benchmarks/sim_throughput.py [--exchanges 10000000] [--workdir DIR]

Target (simulator issue): 10M exchanges in under 10 minutes on 2 cores, with
bounded memory. Writes benchmarks/results/sim_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import machine, peak_rss_mib, timed, workdir, write_result

from distillguard.sim import generate, load_scenario

# disclosure-2026 at scale 1.0 plans ~59.5M exchanges (16.5M attack, 43M benign);
# the scale is chosen to hit the requested total.
_EXCHANGES_AT_SCALE_1 = 59.5e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=float, default=10e6)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with workdir(args.workdir, "dg-sim-") as work:
        measure(args, work)


def measure(args: argparse.Namespace, work: Path) -> None:
    scale = args.exchanges / _EXCHANGES_AT_SCALE_1
    result: dict[str, object] = {"scenario": "disclosure-2026", "scale": round(scale, 4), **machine()}
    with timed(result, "seconds"):
        stats = generate(load_scenario("disclosure-2026").scaled(scale), work / "traffic", seed=0, fmt="parquet")
    size = sum(p.stat().st_size for p in (work / "traffic").rglob("*") if p.is_file())
    result.update(exchanges=stats.exchanges, accounts=stats.accounts, attack_accounts=stats.attack_accounts,
                  attack_exchanges=stats.attack_exchanges, bytes_on_disk=size,
                  exchanges_per_second=round(stats.exchanges / float(result["seconds"])),  # type: ignore[arg-type]
                  peak_rss_mib=peak_rss_mib())
    md = (
        "# Simulator throughput\n\n"
        f"`python benchmarks/sim_throughput.py --exchanges {args.exchanges:.0f}` on {result['cpus']} CPUs\n\n"
        "| exchanges | accounts | seconds | exchanges/s | Parquet size | peak RSS parent / largest worker |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {stats.exchanges:,} | {stats.accounts:,} | {result['seconds']} | {result['exchanges_per_second']:,} "
        f"| {size / 2**30:.2f} GiB | {result['peak_rss_mib']['self']:.0f} / "  # type: ignore[index]
        f"{result['peak_rss_mib']['largest_child']:.0f} MiB |\n\n"  # type: ignore[index]
        "Target: 10M exchanges in under 10 minutes on this 2-core machine.\n"
    )
    write_result("sim_throughput", result, md)


if __name__ == "__main__":
    main()
