"""Detection quality: simulate each scenario, scan it three ways, score the scans against the labels.

    python benchmarks/detection.py [--scenarios demo,disclosure-2026,...] [--seeds 1,2,3,4,5] [--workdir DIR]
    python benchmarks/detection.py --merge results/detection.json results/some-rerun.json

For every scenario and seed the traffic is scanned

- against a **vetted reference**: the benign populations of another period (seed + 100);
- against an **unvetted reference**: the previous period *as it was* (seed + 100, campaigns
  included at the scenario's share), the case a provider has;
- with **no reference**: the scanned population is its own.

Writes benchmarks/results/detection.{json,md}: per run ROC-AUC, PR-AUC, precision / recall /
FPR of `flagged`, recall of accounts with >= 50 exchanges, campaign recall, ARI over attack
accounts, benign accounts put in campaigns, per-population FPR and per-style recall; the
markdown gives each (scenario, mode) as the mean over seeds and the worst seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import machine, timed, workdir, write_result

from distillguard.bench import evaluate
from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.sim.recipes import resolve
from distillguard.store import Store

SCALES = {"demo": 1.0, "disclosure-2026": 0.005, "hard-negatives": 1.0, "evasive": 1.0, "random-campaigns": 1.0}
MODES = ("vetted reference", "unvetted reference", "no reference")
HARD_NEGATIVES = ("enterprise-batch", "eval-harness", "classroom", "saas", "researcher")


def run(name: str, scale: float, work: Path, seed: int, modes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Scan one scenario and seed in each of ``modes``."""
    base = work / f"{name}-{seed}"
    traffic = base / "traffic"
    scenario = load_scenario(name).scaled(scale)
    timing: dict[str, Any] = {}
    with timed(timing, "simulate_s"):
        stats = generate(scenario, traffic, seed=seed)
    references: dict[str, Path | None] = {"no reference": None}
    if "vetted reference" in modes:
        references["vetted reference"] = base / "vetted"
        generate(scenario.benign_only(), base / "vetted", seed=seed + 100)
    if "unvetted reference" in modes:
        # The same campaigns a period earlier (recipes drawn from this seed), other accounts and traffic.
        references["unvetted reference"] = base / "unvetted"
        generate(resolve(scenario, seed)[0], base / "unvetted", seed=seed + 100)
    rows = []
    for mode in modes:
        ref = references[mode]
        row: dict[str, Any] = {"scenario": name, "scale": scale, "seed": seed, "calibration": mode,
                               "exchanges": stats.exchanges, "accounts": stats.accounts,
                               "attack_accounts": stats.attack_accounts, **timing}
        out = base / f"scan-{mode.split()[0]}"
        with timed(row, "scan_s"), Store.open(base / f"{out.name}.duckdb") as store:
            result = scan(traffic, out, store=store, reference_dir=ref)
        summary = json.loads((out / "summary.json").read_text())
        row["scorer"] = summary["scorer"]
        row["reference_set_aside"] = summary["reference_set_aside"]["by_reason"]
        row["metrics"] = evaluate(traffic, out)
        row["reported_campaigns"] = len(result.campaigns)
        rows.append(row)
        print(f"{name} seed {seed} {mode}: {_brief(row)}", flush=True)
    return rows


def _brief(r: dict[str, Any]) -> str:
    m = r["metrics"]
    return (f"recall>=50 {_fmt(m['recall_50plus'])}, campaigns {_fmt(m['campaigns']['recall'])}, "
            f"FPR {_fmt(m['flagged']['fpr'])}, worst hard-negative FPR {_fmt(_worst_hard_negative(m))}, "
            f"ARI {_fmt(m['cluster_ari'])}, benign in campaigns {m['benign_in_attack_campaigns']}, "
            f"set aside {r['reference_set_aside']}")


def _worst_hard_negative(m: dict[str, Any]) -> float:
    pops = m["benign_fpr_by_population"]
    return max((pops[p]["fpr"] for p in HARD_NEGATIVES if p in pops), default=0.0)


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


# (label, value of one run, worst = min or max)
COLUMNS: tuple[tuple[str, Any, Any], ...] = (
    ("ROC-AUC", lambda m: m["roc_auc"], min),
    ("recall", lambda m: m["flagged"]["recall"], min),
    ("recall ≥50 ex.", lambda m: m["recall_50plus"], min),
    ("campaign recall", lambda m: m["campaigns"]["recall"], min),
    ("FPR", lambda m: m["flagged"]["fpr"], max),
    ("worst hard-negative FPR", _worst_hard_negative, max),
    ("ARI", lambda m: m["cluster_ari"], min),
    ("benign in campaigns", lambda m: float(m["benign_in_attack_campaigns"]), max),
)


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Detection benchmark", "",
        f"`python benchmarks/detection.py`: every scenario over seeds {', '.join(map(str, seeds))}, scanned "
        "against a vetted reference (the benign populations of another period), an unvetted one (the previous "
        "period as it was, campaigns included) and none. Target false-positive rate 0.1%. Each cell: mean over "
        "seeds / worst seed.", "",
        "| scenario | reference | " + " | ".join(c[0] for c in COLUMNS) + " | scan s |",
        "|---|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["calibration"]), []).append(r)
    for (scenario, mode), runs in groups.items():
        cells = []
        for _, get, worst in COLUMNS:
            values = [v for v in (get(r["metrics"]) for r in runs) if v is not None]
            cells.append(f"{sum(values) / len(values):.3f} / {worst(values):.3f}" if values else "-")
        secs = sum(r["scan_s"] for r in runs) / len(runs)
        lines.append(f"| {scenario} (x{runs[0]['scale']}) | {mode} | " + " | ".join(cells) + f" | {secs:.1f} |")
    lines += ["", "Recall per drawn campaign (accounts flagged), over all seeds:", ""]
    for (scenario, mode), runs in groups.items():
        per = sorted(v["recall"] for r in runs for v in r["metrics"]["recall_by_campaign"].values())
        if per:
            lines.append(f"- {scenario}, {mode}: {len(per)} campaigns, median {per[len(per) // 2]:.3f}, "
                         f"worst {per[0]:.3f}, {sum(p >= 0.5 for p in per)} detected (≥ half flagged)")
    lines += ["", "Per run (seed): recall ≥50 ex., campaign recall, FPR, worst hard-negative population "
              "(its FPR), reference accounts set aside:", ""]
    for r in rows:
        m = r["metrics"]
        pops = m["benign_fpr_by_population"]
        worst = max((p for p in HARD_NEGATIVES if p in pops), key=lambda p: pops[p]["fpr"], default=None)
        styles = ", ".join(f"{s} {v['recall']:.2f}" for s, v in m["attack_recall_by_style"].items())
        lines.append(
            f"- {r['scenario']} seed {r['seed']}, {r['calibration']}: recall≥50 {_fmt(m['recall_50plus'])}, "
            f"campaigns {_fmt(m['campaigns']['recall'])}, FPR {_fmt(m['flagged']['fpr'])}, "
            f"{worst} {_fmt(pops[worst]['fpr']) if worst else '-'}, set aside {r['reference_set_aside'] or 0}; "
            f"recall by style: {styles}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default=",".join(SCALES))
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--name", default="detection", help="results file name (benchmarks/results/NAME.md)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="scan nothing: combine these results JSON files into NAME, a later file's scenarios "
                         "replacing an earlier one's (re-run some scenarios, keep the rest)")
    args = ap.parse_args()
    if args.merge:
        merged: dict[str, list[dict[str, Any]]] = {}
        source: dict[str, str] = {}
        for path in args.merge:
            data = json.loads(path.read_text())
            for name in dict.fromkeys(r["scenario"] for r in data["runs"]):
                merged[name] = [r for r in data["runs"] if r["scenario"] == name]
                source[name] = data.get("sources", {}).get(name, path.name)
        rows = [r for name in SCALES for r in merged.get(name, [])]
        origins = "; ".join(f"{n}: {source[n]}" for n in SCALES if n in source)
        note = f"\nRows by the run they come from: {origins}.\n"
        write_result(args.name, {"machine": machine(), "runs": rows, "sources": source}, markdown(rows) + note)
        return
    modes = tuple(m.strip() for m in args.modes.split(","))
    with workdir(args.workdir, "dg-detect-") as work:
        rows = [row for name in args.scenarios.split(",") for seed in map(int, args.seeds.split(","))
                for row in run(name, SCALES[name], work, seed, modes)]
        write_result(args.name, {"machine": machine(), "runs": rows}, markdown(rows))


if __name__ == "__main__":
    main()
