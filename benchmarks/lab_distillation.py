"""The distillation lab's headline: does the attack work, and what does withholding reasoning cost it?

    python benchmarks/lab_distillation.py [--preset default] [--out lab-bench]

Runs ``distillguard lab run`` from scratch (teacher trained, not loaded: the
output directory is emptied first), times it, and writes the teacher's
held-out accuracy, every student's (per defence, harvest size, with and
without reasoning) and the baselines to benchmarks/results/lab_distillation.{json,md}.
Targets (lab issue): with the default preset the student reaches at least 70% of the
teacher's held-out accuracy from harvested outputs alone, clearly more with reasoning
traces than without, and the whole run takes under 20 minutes on this 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _common import machine, peak_rss_mib, write_result

from distillguard.lab.experiment import preset, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", type=Path, default=Path("lab-bench"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    results = run(preset(args.preset), args.out)
    seconds = time.perf_counter() - started
    teacher = results["teacher_accuracy"]
    best = {}
    for r in results["runs"]:
        key = (r["defence"], r["with_reasoning"])
        if r["harvested"] >= best.get(key, {"harvested": -1})["harvested"]:
            best[key] = r
    data = {**machine(), "preset": args.preset, "seconds": round(seconds, 1), "peak_rss_mib": peak_rss_mib(),
            "teacher_accuracy": teacher, "teacher_by_kind": results["teacher_by_kind"], "runs": results["runs"],
            "baselines": results["baselines"], "baselines_n": results["baselines_n"],
            "harvests": results["harvests"]}
    cfg = results["config"]
    md = ["# Distillation lab", "",
          f"`python benchmarks/lab_distillation.py --preset {args.preset}` on {data['cpus']} CPUs, from scratch "
          f"in **{seconds / 60:.1f} min** (target: under 20). Teacher: GPT-2-style, "
          f"{cfg['architecture']['layers']} layers × {cfg['architecture']['width']}, trained "
          f"{cfg['teacher']['steps']} steps on {cfg['teacher_examples']:,} ground-truth tasks "
          f"({', '.join(cfg['tasks'])}) with step-by-step traces; held-out accuracy **{teacher:.3f}** on "
          f"{cfg['eval_tasks']} tasks ({', '.join(f'{k} {v:.2f}' for k, v in results['teacher_by_kind'].items())}). "
          f"The attacker harvests it through the gateway with {cfg['accounts']} accounts (official `openai` "
          "client); each student is the same architecture trained from scratch "
          f"({cfg['student']['steps']} steps) on the first N harvested pairs.", "",
          "| defence | harvested | student trained | student accuracy | of teacher |", "|---|---:|---|---:|---:|"]
    for r in results["runs"]:
        md.append(f"| {r['defence']} | {r['harvested']:,} | {'with' if r['with_reasoning'] else 'without'} "
                  f"reasoning | {r['student_accuracy']:.3f} | {r['student_accuracy'] / max(teacher, 1e-9):.0%} |")
    b, n = results["baselines"], results["baselines_n"]
    md += ["", f"Baselines, same architecture: untrained {b['untrained']:.3f}; trained on the same number of "
           f"ground-truth examples with their traces (n={n['ground_truth_same_n']:,}) {b['ground_truth_same_n']:.3f}; "
           f"trained from scratch on little data (n={n['small_data']:,}) {b['small_data']:.3f}."]
    full = best.get(("none", True))
    bare = best.get(("none", False))
    if full and bare:
        md += ["", f"From {full['harvested']:,} harvested exchanges the student reaches "
               f"{full['student_accuracy'] / max(teacher, 1e-9):.0%} of the teacher with the reasoning traces and "
               f"{bare['student_accuracy'] / max(teacher, 1e-9):.0%} without them (target: at least 70%, and "
               "clearly more with reasoning); `withhold_reasoning` at the gateway leaves the attacker the second "
               "figure."]
    write_result("lab_distillation", data, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
