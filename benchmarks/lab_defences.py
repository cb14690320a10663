"""Deterrence that honest users do not pay for (#22): what each defence leaves the attacker, and costs an honest user.

    python benchmarks/lab_defences.py [--preset default] [--out lab-defences] [--lambdas 0.03,0.1,0.3,1]
                                      [--lambda L] [--points LABEL,...] [--plan]

On the lab's teacher (trained once, cached in OUT/teacher, shared by every point; harvests, students and
points are cached in OUT too, so a second run only computes what is missing):

1. **Calibration**: the teacher answers the held-out tasks greedily with antidistillation on for everyone,
   at each ``--lambdas`` value (``lab.evaluate.answers_with``); ``λ*`` is the largest one that costs an
   honest user at most 2 points of accuracy (or ``--lambda``).
2. **Points**: one per (defence, attacker). The attacker harvests the prompt pool through a gateway that
   applies the defence to its accounts (the lab's ``harvest_all``: the official ``openai`` client, 20
   accounts); a student of the lab's default size is trained from scratch on what it keeps. Attackers:
   ``naive`` (every pair, with the reasoning it got), ``answers`` (answers only), ``correct`` (only pairs
   whose answer is right), ``perplexity`` (drops the 20% of replies its own model, the naive student,
   finds most surprising), more data (3,000 exchanges) and ``mixing`` (half of its accounts unflagged:
   the defence reaches half the harvest). Points labelled ``T=1`` harvest at temperature 1 (an OpenAI-style
   API's default; the others decode greedily, the lab's default), seeded per prompt so that they repeat.

Per point: student held-out accuracy; the honest user's accuracy and share of answers with reasoning
when the defence applies to everyone (greedy; a gateway transform leaves answers as they are and changes
the reasoning shown; for a ``T=1`` point also sampled at the harvest's temperature, as the ADS paper compares);
teacher time per token (indicative: the machine is shared); the share of the harvest that went through
flagged accounts (assumed by the setting, not measured by the detector here).

Writes benchmarks/results/lab_defences.{json,md} and lab_defences.svg (student accuracy against
honest-user accuracy: the trade-off frontier). ``--plan`` prints the points and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, peak_rss_mib, write_result

from distillguard.lab.antidistillation import ProxyStore
from distillguard.lab.attackers import as_examples, correct_only, low_perplexity
from distillguard.lab.evaluate import answers_with, scores
from distillguard.lab.examples import Example, examples_from_tasks
from distillguard.lab.experiment import (
    LabConfig,
    antidistillation_spec,
    harvest_all,
    prepare_proxy,
    preset,
    task_sets,
)
from distillguard.lab.harvest import Outcome, read_outcomes
from distillguard.lab.train import run_key, train_model
from distillguard.models.generate import Model

MAX_LOSS = 0.02  # honest-user accuracy an antidistillation setting may cost (#22)
ADS, STACK = "antidistillation", "antidistillation+summarize_reasoning"
T1 = {"harvest_temperature": 1.0}  # the attacker samples at an OpenAI-style API's default temperature


@dataclass(frozen=True)
class Point:
    """One attacker against one defence setting."""

    label: str
    defence: str
    size: int
    attacker: str = "naive"  # naive | answers | correct | perplexity
    update: dict[str, Any] = field(default_factory=dict)  # LabConfig fields (flagged_share for mixing)

    def config(self, base: LabConfig, lam: float) -> LabConfig:
        return base.model_copy(update={"antidistillation_lambda": lam, **self.update, "defences": [self.defence],
                                       "harvest_sizes": [self.size]})


def points() -> list[Point]:
    """Every point, cheapest and most telling first (``--points`` picks some)."""
    return [Point("naive", "none", 1000), Point("answers-only", "none", 1000, "answers"),
            Point("ADS", ADS, 1000), Point("naive T=1", "none", 1000, update=T1),
            Point("answers-only T=1", "none", 1000, "answers", update=T1), Point("ADS T=1", ADS, 1000, update=T1),
            Point("ADS+summarize T=1", STACK, 1000, update=T1), Point("ADS correct-only", ADS, 1000, "correct"),
            Point("summarize", "summarize_reasoning", 1000), Point("ADS+summarize", STACK, 1000),
            Point("naive 3k", "none", 3000), Point("ADS 3k", ADS, 3000), Point("ADS+summarize 3k", STACK, 3000),
            Point("summarize correct-only", "summarize_reasoning", 1000, "correct"),
            Point("ADS+summarize correct-only", STACK, 1000, "correct"),
            Point("ADS perplexity-filter", ADS, 1000, "perplexity"),
            Point("ADS+summarize mixing-50%", STACK, 1000, update={"flagged_share": 0.5}),
            Point("withhold", "withhold_reasoning", 1000)]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cached(path: Path, make: Any) -> Any:
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return value


def honest_user(teacher: Model, config: LabConfig, specs: list[dict[str, Any]], out: Path,
                temperature: float = 0.0) -> dict[str, Any]:
    """The teacher's held-out accuracy, share of answers with reasoning, and time per generated token, with the
    processors ``specs`` on for everyone (greedy, or sampled at ``temperature``, seeded)."""
    _, held_out, _ = task_sets(config)
    started = time.perf_counter()
    said = answers_with(teacher, [t.prompt for t in held_out], specs=specs, max_tokens=config.max_tokens,
                        temperature=temperature, seed=config.seed, proxies=ProxyStore(out / "antidistillation"))
    seconds = time.perf_counter() - started
    tokens = sum(len(teacher.tokenizer(f"{r}{a}", add_special_tokens=False)["input_ids"]) + (2 if r else 0) + 1
                 for a, r in said)  # + the <think> markers and the end token
    right = [t.check(a) for t, (a, _) in zip(held_out, said, strict=True)]
    return {"accuracy": round(sum(right) / len(right), 4),
            "with_reasoning": round(sum(bool(r) for _, r in said) / len(said), 4),
            "seconds": round(seconds, 1), "ms_per_token": round(1000 * seconds / max(tokens, 1), 2),
            "processors": specs}


def calibrate(teacher: Model, base: LabConfig, lambdas: list[float], out: Path) -> dict[str, Any]:
    """Honest-user figures at each λ (0: plain), cached per λ."""
    prepare_proxy(base, teacher, out / "antidistillation")
    rows = {}
    for lam in [0.0, *lambdas]:
        cfg = base.model_copy(update={"antidistillation_lambda": lam})
        specs = [antidistillation_spec(cfg)] if lam else []
        rows[f"{lam:g}"] = _cached(out / "honest" / f"{_key(specs, base.eval_tasks)}.json",
                                   lambda c=cfg, s=specs: honest_user(teacher, c, s, out))
    return rows


def choose_lambda(calibration: dict[str, Any]) -> float:
    """The largest λ whose honest-user accuracy is within ``MAX_LOSS`` of the plain teacher's (0 if none)."""
    plain = calibration["0"]["accuracy"]
    ok = [float(lam) for lam, row in calibration.items() if row["accuracy"] >= plain - MAX_LOSS - 1e-9]
    return max(ok)


def harvested(teacher: Model, point: Point, config: LabConfig, out: Path) -> list[Outcome]:
    """The point's harvest (cached by defence, λ and settings; a longer cached harvest's prefix is reused)."""
    key = _key(point.defence, point.update, config.antidistillation_lambda)
    folder = out / "harvests"
    for cached in sorted(folder.glob(f"{key}-*.jsonl")):
        if int(cached.stem.rsplit("-", 1)[1]) >= point.size:
            return read_outcomes(cached)[:point.size]
    _, _, pool = task_sets(config)
    result = harvest_all(config, teacher, prompts=[t.prompt for t in pool], out=out)[point.defence]
    folder.mkdir(parents=True, exist_ok=True)
    (out / f"harvest-{point.defence}.jsonl").replace(folder / f"{key}-{point.size}.jsonl")
    return result.outcomes


def student(config: LabConfig, examples: list[Example], out: Path) -> tuple[Model, float, dict[str, float]]:
    spec, settings = config.architecture.spec(), config.student.settings(config.seed)
    model = train_model(examples, spec, settings=settings,
                        out=out / "students" / run_key(examples, spec, settings=settings)[:16])
    _, held_out, _ = task_sets(config)
    overall, kinds = scores(model, held_out, config.max_tokens)
    return model, round(overall, 4), kinds


def measure(teacher: Model, point: Point, config: LabConfig, out: Path) -> dict[str, Any]:
    outcomes = harvested(teacher, point, config, out)
    _, _, pool = task_sets(config)
    naive = as_examples(outcomes, with_reasoning=point.attacker != "answers")
    if point.attacker == "correct":
        examples = correct_only(outcomes, pool)
    elif point.attacker == "perplexity":
        own, _, _ = student(config, naive, out)  # the attacker's own model: a student on the whole harvest
        examples = low_perplexity(own, naive, keep=0.8)
    else:
        examples = naive
    _, accuracy, kinds = student(config, examples, out)
    pairs = [o for o in outcomes if o.status == "ok"]
    right = len(correct_only(outcomes, pool))
    flagged = round(config.accounts * config.flagged_share)
    return {"label": point.label, "defence": point.defence, "attacker": point.attacker, "update": point.update,
            "lambda": config.antidistillation_lambda if "antidistillation" in point.defence else None,
            "prompts": point.size, "harvested": len(pairs), "trained_on": len(examples),
            "harvest_correct": round(right / max(len(pairs), 1), 4),
            "with_reasoning": round(sum(bool(o.reasoning) for o in pairs) / max(len(pairs), 1), 4),
            "through_flagged": round(sum(o.account < flagged for o in pairs) / max(len(pairs), 1), 4)
            if point.defence != "none" else 0.0,
            "student_accuracy": accuracy, "student_by_kind": kinds}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--out", type=Path, default=Path("lab-defences"))
    ap.add_argument("--lambdas", default="0.03,0.1,0.3,1")
    ap.add_argument("--lambda", dest="lam", type=float, default=None, help="λ* (default: calibrated)")
    ap.add_argument("--points", default=None, help="comma-separated labels (default: all)")
    ap.add_argument("--skip-calibration", action="store_true", help="with --lambda: measure only λ* and plain")
    ap.add_argument("--plan", action="store_true", help="print the points and exit")
    args = ap.parse_args()
    base = preset(args.preset)
    chosen = [p for p in points() if args.points is None or p.label in args.points.split(",")]
    if args.plan:
        for p in chosen:
            print(json.dumps({"label": p.label, "defence": p.defence, "size": p.size, "attacker": p.attacker,
                              "update": p.update}))
        return
    started = time.perf_counter()
    train, held_out, _ = task_sets(base)
    teacher = train_model(examples_from_tasks(train), base.architecture.spec(),
                          settings=base.teacher.settings(base.seed), out=args.out / "teacher")
    teacher_accuracy = round(scores(teacher, held_out, base.max_tokens)[0], 4)
    lambdas = [args.lam] if args.skip_calibration and args.lam else [float(x) for x in args.lambdas.split(",")
                                                                     if x.strip()]
    calibration = calibrate(teacher, base, lambdas, args.out)
    lam = args.lam if args.lam is not None else choose_lambda(calibration)
    rows = []
    for p in chosen:
        cfg = p.config(base, lam)
        row = _cached(args.out / "points" / f"{_key(p, lam)}.json", lambda p=p, cfg=cfg: measure(teacher, p, cfg,
                                                                                                 args.out))
        rows.append({**row, "honest": _honest(teacher, p, cfg, calibration, args.out)})
        print(json.dumps({k: row[k] for k in ("label", "trained_on", "student_accuracy")}), flush=True)
    data = {**machine(), "preset": args.preset, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mib": peak_rss_mib(), "teacher_accuracy": teacher_accuracy, "lambda": lam,
            "calibration": calibration, "points": rows}
    write_result("lab_defences", data, _markdown(data, args))
    (RESULTS / "lab_defences.svg").write_text(_frontier(data))


def _honest(teacher: Model, p: Point, cfg: LabConfig, calibration: dict[str, Any], out: Path) -> dict[str, Any]:
    """The honest user with the point's defence on for everyone (transforms keep the answers)."""
    lam = f"{cfg.antidistillation_lambda:g}"
    row = dict(calibration[lam] if ADS in p.defence.split("+") and lam in calibration else calibration["0"])
    if ADS in p.defence.split("+") and lam not in calibration:
        row = _cached(out / "honest" / f"{_key([antidistillation_spec(cfg)], cfg.eval_tasks)}.json",
                      lambda: honest_user(teacher, cfg, [antidistillation_spec(cfg)], out))
    if cfg.harvest_temperature > 0:  # the honest user sampled as the attacker is (the ADS paper's comparison)
        specs = [antidistillation_spec(cfg)] if ADS in p.defence.split("+") else []
        t = cfg.harvest_temperature
        row["sampled"] = _cached(out / "honest" / f"{_key(specs, cfg.eval_tasks, t)}.json",
                                 lambda: honest_user(teacher, cfg, specs, out, temperature=t))
        row["sampled"]["temperature"] = t
    parts = p.defence.split("+")
    row["reasoning_shown"] = ("none" if "withhold_reasoning" in parts else
                              "summarized" if "summarize_reasoning" in parts else "full")
    return row


def _markdown(data: dict[str, Any], args: argparse.Namespace) -> str:
    md = ["# Defences against adaptive attackers: the attacker's student and the honest user", "",
          f"`python benchmarks/lab_defences.py --preset {args.preset} --lambdas {args.lambdas}"
          f"{' --points ' + repr(args.points) if args.points else ''}` on {data['cpus']} "
          f"CPUs ({data['seconds'] / 60:.1f} min this run; cached stages not counted). Teacher held-out accuracy "
          f"{data['teacher_accuracy']:.3f}; λ* = {data['lambda']:g}. Times per token: indicative, shared machine.",
          "", "Calibration (honest user, antidistillation on for everyone, greedy, held-out tasks):", "",
          "| λ | honest-user accuracy | answers with reasoning | teacher ms/token |", "|---:|---:|---:|---:|"]
    for lam, row in data["calibration"].items():
        md.append(f"| {lam} | {row['accuracy']:.3f} | {row['with_reasoning']:.0%} | {row['ms_per_token']:.2f} |")
    md += ["", "| point | defence | attacker | exchanges | trained on | harvest correct | through flagged "
           "| student accuracy | of naive's | gain kept | honest-user accuracy | honest-user accuracy at T=1 "
           "| reasoning shown | teacher ms/token |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in data["points"]:
        h = r["honest"]
        naive, floor = _reference(data, r, "naive"), _reference(data, r, "answers-only")
        sampled = f"{h['sampled']['accuracy']:.3f}" if "sampled" in h else "–"
        md.append(f"| {r['label']} | {r['defence']} | {r['attacker']} | {r['prompts']:,} | {r['trained_on']:,} "
                  f"| {r['harvest_correct']:.0%} | {r['through_flagged']:.0%} | {r['student_accuracy']:.3f} "
                  f"| {_share(r, naive)} | {_kept(r, naive, floor)} | {h['accuracy']:.3f} | {sampled} "
                  f"| {h['reasoning_shown']} | {h['ms_per_token']:.2f} |")
    md += ["", "Points labelled T=1 harvest at temperature 1 (seeded per prompt); the others greedily. Of naive's: "
           "student accuracy / the naive attacker's at 1,000 exchanges and the same temperature (capability per "
           "harvested exchange, relative). Gain kept: (student − answers-only student) / (naive student − "
           "answers-only student), both at the point's temperature: the share of what the with-reasoning harvest "
           "taught beyond its answers that survives. Honest-user accuracy: greedy, the defence on for everyone "
           "(λ* is calibrated on it); at T=1: sampled at temperature 1 (seeded), as the attacker was, with the "
           "point's antidistillation setting (or none)."]
    return "\n".join(md) + "\n"


def _reference(data: dict[str, Any], r: dict[str, Any], label: str) -> dict[str, Any] | None:
    """The ``naive`` or ``answers-only`` point harvested at ``r``'s temperature (``naive T=1`` for T=1 points)."""
    t = r["update"].get("harvest_temperature", 0.0)
    return next((x for x in data["points"] if x["label"] == (f"{label} T={t:g}" if t else label)), None)


def _share(r: dict[str, Any], naive: dict[str, Any] | None) -> str:
    if naive is None or not naive["student_accuracy"]:
        return "–"
    per_exchange = r["student_accuracy"] / r["prompts"] / (naive["student_accuracy"] / naive["prompts"])
    return f"{per_exchange:.0%}"


def _kept(r: dict[str, Any], naive: dict[str, Any] | None, floor: dict[str, Any] | None) -> str:
    if naive is None or floor is None or naive["student_accuracy"] <= floor["student_accuracy"]:
        return "–"
    gain = naive["student_accuracy"] - floor["student_accuracy"]
    return f"{(r['student_accuracy'] - floor['student_accuracy']) / gain:.0%}"


def _frontier(data: dict[str, Any]) -> str:
    """Student accuracy against the honest user's accuracy loss (points), one point per defence setting at 1,000
    exchanges, one series per attacker: lower left is better for the defender."""
    from distillguard.report.charts import lines_svg

    plain = data["calibration"]["0"]["accuracy"]
    series: dict[str, list[tuple[float, float]]] = {}
    for r in data["points"]:
        if r["prompts"] == 1000 and r["attacker"] in ("naive", "correct") and set(r["update"]) <= set(T1):
            loss = max(0.0, 100 * (plain - r["honest"]["accuracy"]))
            t = r["update"].get("harvest_temperature")
            name = f"{r['attacker']} attacker{f', harvest T={t:g}' if t else ''}"
            series.setdefault(name, []).append((loss, r["student_accuracy"]))
    return lines_svg(series, references={"teacher": data["teacher_accuracy"] or 0.0},
                     x_label="honest-user accuracy lost (points)", y_label="student held-out accuracy")


if __name__ == "__main__":
    main()
