"""Detection quality: simulate each scenario, scan it, score the scan against the labels.

    python benchmarks/detection.py [--scenarios demo,disclosure-2026,...] [--workdir DIR]

Writes benchmarks/results/detection.{json,md}: one row per scenario with ROC-AUC,
PR-AUC, precision / recall / FPR of `flagged`, campaign recall, the share of attack
exchanges caught, clustering agreement (ARI) and benign accounts put in campaigns,
plus per-population false-positive rates and per-style recall.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import machine, timed, workdir, write_result

from distillguard.bench import evaluate
from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store

SCALES = {"demo": 1.0, "disclosure-2026": 0.005, "hard-negatives": 1.0, "evasive": 1.0}


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def run(name: str, scale: float, work: Path, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"scenario": name, "scale": scale, "seed": seed}
    traffic, out = work / name / "traffic", work / name / "scan"
    with timed(row, "simulate_s"):
        stats = generate(load_scenario(name).scaled(scale), traffic, seed=seed)
    with timed(row, "scan_s"), Store.open(work / name / "s.duckdb") as store:
        scan(traffic, out, store)
    row.update(exchanges=stats.exchanges, accounts=stats.accounts, attack_accounts=stats.attack_accounts)
    row["metrics"] = evaluate(traffic, out)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Detection benchmark", "",
        "`python benchmarks/detection.py` — scorer: robust-z baseline (foundation issue); "
        "threshold at a 1% target FPR over the scanned population.", "",
        "| scenario | exchanges | accounts (attack) | ROC-AUC | PR-AUC | precision | recall | FPR "
        "| campaign recall | attack exchanges caught | ARI | benign in campaigns | scan s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m, f = r["metrics"], r["metrics"]["flagged"]
        lines.append(
            f"| {r['scenario']} (x{r['scale']}) | {r['exchanges']:,} | {r['accounts']:,} ({r['attack_accounts']}) "
            f"| {_fmt(m['roc_auc'])} | {_fmt(m['pr_auc'])} | {_fmt(f['precision'])} | {_fmt(f['recall'])} "
            f"| {_fmt(f['fpr'])} | {_fmt(m['campaigns']['recall'])} | {_fmt(m['attack_exchange_share_caught'])} "
            f"| {_fmt(m['cluster_ari'])} | {m['benign_in_attack_campaigns']} | {r['scan_s']} |")
    lines += ["", "Per benign population (false-positive rate) and attack style (recall):", ""]
    for r in rows:
        m = r["metrics"]
        pops = ", ".join(f"{p} {v['fpr']:.3f}" for p, v in m["benign_fpr_by_population"].items())
        styles = ", ".join(f"{s} {v['recall']:.3f}" for s, v in m["attack_recall_by_style"].items())
        lines.append(f"- **{r['scenario']}**: FPR {pops}; recall {styles}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default=",".join(SCALES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with workdir(args.workdir, "dg-detect-") as work:
        measure(args, work)


def measure(args: argparse.Namespace, work: Path) -> None:
    rows = [run(name, SCALES[name], work, args.seed) for name in args.scenarios.split(",")]
    md = markdown(rows)
    write_result("detection", {"machine": machine(), "runs": rows}, md)


if __name__ == "__main__":
    main()
