"""Deterrence that honest users do not pay for (#22): what each defence leaves the attacker, and costs an honest user.

    python benchmarks/lab_defences.py [--preset default] [--out lab-defences] [--lambdas 0.03,0.1,0.3,1] [--plan]

One point per defence setting, on the lab's teacher (trained once, cached in OUT/teacher, shared by
every setting; students on identical data are cached too):

- **student accuracy**: held-out accuracy of students trained from scratch on the first N exchanges
  harvested through the gateway with the defence applied to the attacker's accounts, with and
  without the reasoning the gateway let through (``lab run`` with that one defence);
- **honest-user accuracy**: the teacher's held-out accuracy when the defence applies to everyone
  (greedy decoding with the defence's logits processors on: ``lab.evaluate.answers_with``), and the
  share of its answers that still carry reasoning;
- **teacher time per token** with the defence on (that honest-user decoding; indicative: the
  machine is shared).

Settings: ``none`` and ``withhold_reasoning`` (the references: withholding keeps answers right but
takes the reasoning from every honest user) and ``antidistillation`` at each ``--lambdas`` value
(proxy and epsilon from the preset: ``proxy_steps``, ``antidistillation_epsilon``). Target (#22): at
most 2 points of honest-user accuracy lost while the student's gain from a with-reasoning harvest of
1,000 exchanges is cut by at least half. Not measured here yet: the adaptive attackers (answer
filtering, 3,000 and 10,000 exchanges, mixing accounts), the other defences of #22, and detection-driven
stacks.

Writes benchmarks/results/lab_defences.{json,md} and lab_defences.svg (student accuracy against
honest-user accuracy, one point per setting: the trade-off frontier). ``--plan`` prints the settings
and exits.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, peak_rss_mib, write_result

from distillguard.lab.antidistillation import ProxyStore
from distillguard.lab.evaluate import answers_with
from distillguard.lab.experiment import LabConfig, antidistillation_spec, preset, run, task_sets
from distillguard.models.load import load_model


@dataclass(frozen=True)
class Setting:
    """One point of the frontier: a lab defence and the configuration it runs with."""

    label: str
    defence: str
    update: dict[str, Any] = field(default_factory=dict)

    def config(self, base: LabConfig) -> LabConfig:
        return base.model_copy(update={**self.update, "defences": [self.defence]})

    def honest_specs(self, config: LabConfig) -> list[dict[str, Any]]:
        """The processors an honest user's requests carry when the defence applies to everyone."""
        return [antidistillation_spec(config)] if self.defence == "antidistillation" else []


def settings(lambdas: list[float]) -> list[Setting]:
    return [Setting("none", "none"), Setting("withhold_reasoning", "withhold_reasoning"),
            *(Setting(f"antidistillation λ={lam:g}", "antidistillation", {"antidistillation_lambda": lam})
              for lam in lambdas)]


def honest_user(config: LabConfig, setting: Setting, out: Path) -> dict[str, Any]:
    """The teacher's held-out accuracy, share of answers with reasoning, and time per generated token, with the
    defence on for everyone (greedy). Antidistillation can cost the reasoning itself (it tilts away from the
    tokens the held-out traces start with), so the share is measured, not assumed."""
    teacher = load_model(out / "teacher")
    _, held_out, _ = task_sets(config)
    specs = setting.honest_specs(config)
    started = time.perf_counter()
    said = answers_with(teacher, [t.prompt for t in held_out], specs=specs, max_tokens=config.max_tokens,
                        proxies=ProxyStore(out / "antidistillation"))
    seconds = time.perf_counter() - started
    tokens = sum(len(teacher.tokenizer(f"{r}{a}", add_special_tokens=False)["input_ids"]) + (2 if r else 0) + 1
                 for a, r in said)  # + the <think> markers and the end token
    right = [t.check(a) for t, (a, _) in zip(held_out, said, strict=True)]
    shown = 0.0 if setting.defence == "withhold_reasoning" else sum(bool(r) for _, r in said) / max(len(said), 1)
    return {"accuracy": round(sum(right) / max(len(right), 1), 4), "with_reasoning": round(shown, 4),
            "seconds": round(seconds, 1), "ms_per_token": round(1000 * seconds / max(tokens, 1), 2),
            "processors": specs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", type=Path, default=Path("lab-defences"))
    ap.add_argument("--lambdas", default="0.03,0.1,0.3,1")
    ap.add_argument("--plan", action="store_true", help="print the settings and exit")
    args = ap.parse_args()
    base = preset(args.preset)
    chosen = settings([float(x) for x in args.lambdas.split(",") if x.strip()])
    if args.plan:
        for s in chosen:
            cfg = s.config(base)
            print(json.dumps({"label": s.label, "defence": s.defence, "update": s.update,
                              "honest_processors": s.honest_specs(cfg), "harvest_sizes": cfg.harvest_sizes}))
        return
    started = time.perf_counter()
    points: list[dict[str, Any]] = []
    teacher_accuracy = None
    for s in chosen:
        cfg = s.config(base)
        results = run(cfg, args.out)
        teacher_accuracy = results["teacher_accuracy"]
        honest = honest_user(cfg, s, args.out)
        points.append({"label": s.label, "defence": s.defence, "update": s.update, "honest": honest,
                       "runs": [r for r in results["runs"] if r["defence"] == s.defence],
                       "harvest": results["harvests"][s.defence]})
    seconds = time.perf_counter() - started
    data = {**machine(), "preset": args.preset, "seconds": round(seconds, 1), "peak_rss_mib": peak_rss_mib(),
            "teacher_accuracy": teacher_accuracy, "points": points}
    write_result("lab_defences", data, _markdown(data, args))
    (RESULTS / "lab_defences.svg").write_text(_frontier(data))


def _largest(runs: list[dict[str, Any]], with_reasoning: bool) -> dict[str, Any] | None:
    chosen = [r for r in runs if r["with_reasoning"] == with_reasoning]
    return max(chosen, key=lambda r: r["harvested"]) if chosen else None


def _markdown(data: dict[str, Any], args: argparse.Namespace) -> str:
    teacher = data["teacher_accuracy"] or 0.0
    md = ["# Defences: the attacker's student against the honest user", "",
          f"`python benchmarks/lab_defences.py --preset {args.preset} --lambdas {args.lambdas}` on {data['cpus']} "
          f"CPUs in {data['seconds'] / 60:.1f} min. Teacher held-out accuracy {teacher:.3f} (plain). Student: "
          "trained from scratch on the largest harvest; honest user: the teacher with the defence on for everyone "
          "(greedy). Time per token: indicative, on a shared machine.", "",
          "| setting | honest-user accuracy | answers with reasoning | student, with reasoning | student, without "
          "| teacher ms/token |", "|---|---:|---:|---:|---:|---:|"]
    for p in data["points"]:
        honest = p["honest"]
        md.append(f"| {p['label']} | {honest['accuracy']:.3f} | {honest['with_reasoning']:.0%} "
                  f"| {_cell(_largest(p['runs'], True))} | {_cell(_largest(p['runs'], False))} "
                  f"| {honest['ms_per_token']:.2f} |")
    return "\n".join(md) + "\n"


def _cell(r: dict[str, Any] | None) -> str:
    return f"{r['student_accuracy']:.3f} (n={r['harvested']:,})" if r else "–"


def _frontier(data: dict[str, Any]) -> str:
    """Student accuracy (with reasoning where the harvest had it) against honest-user accuracy, per setting."""
    from distillguard.report.charts import lines_svg

    series: dict[str, list[tuple[float, float]]] = {}
    for p in data["points"]:
        run_ = _largest(p["runs"], True) or _largest(p["runs"], False)
        if run_ is not None:
            name = "antidistillation (λ sweep)" if p["defence"] == "antidistillation" else p["label"]
            series.setdefault(name, []).append((p["honest"]["accuracy"], run_["student_accuracy"]))
    for points in series.values():
        points.sort()
    return lines_svg(series, references={"teacher": data["teacher_accuracy"] or 0.0},
                     x_label="honest-user accuracy", y_label="student held-out accuracy")


if __name__ == "__main__":
    main()
