"""Canaries: what share of a harvest must carry them for a student to give itself away?

    python benchmarks/canary_share.py [--shares 0.01,0.02,0.05,0.1] [--teacher lab-bench/teacher]

For each share, ``distillguard lab run`` with the ``canary`` defence only: the gateway puts the lab's
attacker accounts under ``monitor`` and appends a keyed canary (an invented name in a natural phrase,
logged with the account) to that share of their answers; the attacker harvests 1,000 exchanges with
the official ``openai`` client and trains students on them (with and without the reasoning). Each
student is put to the forensic canary test (open setting): for every canary in its training data,
how many of 19 look-alikes from the same generator under fresh keys does the student find at least
as likely as the real phrase (its rank)? Under the null (a model that never saw our answers) each rank
is uniform on 0..19, and the sum of the ranks has an exactly counted distribution. The teacher of
``lab_distillation.py`` is reused (copied, cached by its training key). Target (watermark issue):
p < 1e-6 against base-rate models; report the share needed.
Writes benchmarks/results/canary_share.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from _common import machine, write_result

from distillguard.lab.experiment import preset, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shares", default="0.01,0.02,0.05,0.1")
    ap.add_argument("--teacher", type=Path, default=Path("lab-bench/teacher"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/_work/canary"))
    args = ap.parse_args()
    started = time.perf_counter()
    shutil.rmtree(args.out, ignore_errors=True)
    if args.teacher.is_dir():
        shutil.copytree(args.teacher, args.out / "teacher")  # loaded, not retrained, when its key matches
    rows = []
    for share in [float(s) for s in args.shares.split(",")]:
        config = preset("default").model_copy(update={"defences": ["canary"], "harvest_sizes": [1000],
                                                      "canary_share": share})
        results = run(config, args.out)
        for r in results["runs"]:
            rows.append({"share": share, "canaries_sent": results["harvests"]["canary"]["canaries"],
                         "with_reasoning": r["with_reasoning"], "harvested": r["harvested"],
                         "student_accuracy": r["student_accuracy"], **r["canary_test"]})
            print(rows[-1], flush=True)
    data = {**machine(), "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    md = ["# Canaries in a student", "",
          f"`python benchmarks/canary_share.py --shares {args.shares}` ({data['seconds'] / 60:.1f} min on "
          f"{data['cpus']} CPUs). The gateway appends a keyed canary to the given share of the attacker's "
          "answers; students (the lab's default) train on the 1,000 harvested exchanges; the canary test ranks "
          "each canary in a student's training data against 19 look-alikes by the student's likelihood "
          "(exact rank-sum test: each rank uniform on 0..19 under the null).", "",
          "| canary share | canaries sent | canaries in training | student trained | ranked first | mean rank "
          "| p-value | student accuracy |",
          "|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['share']:.0%} | {r['canaries_sent']} | {r['canaries']} | "
                  f"{'with' if r['with_reasoning'] else 'without'} reasoning | {r.get('ranked_first', 0)} | "
                  f"{r.get('statistic', 0):.2f} | {r['p_value']:.2g} | {r['student_accuracy']:.3f} |")
    md += ["", "Target: p < 1e-6 against base-rate models; the share needed is the smallest row that reaches it."]
    write_result("canary_share", data, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
