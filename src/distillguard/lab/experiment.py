"""``distillguard lab run``: teacher → model server → gateway → harvest → students → results.json and a plot.

One run, end to end on loopback: train (or load) the teacher on ground-truth
tasks with their step-by-step traces; serve it; for each defence, start a
gateway whose policy applies that defence to the attacker's accounts and
harvest the prompt pool through it with the official ``openai`` client; train a
fresh student on each prefix of the harvest (with the reasoning the gateway let
through, and without it); evaluate teacher, students and baselines (untrained;
the same number of ground-truth examples; a small ground-truth set) on held-out
tasks. Students on identical data share one cached model, so a defence that
changes nothing costs nothing to measure.

>>> preset("tiny").harvest_sizes
[24, 48]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from distillguard.config import read_toml, validated
from distillguard.errors import ConfigError
from distillguard.lab.antidistillation import PreparedProxy, prepare
from distillguard.lab.evaluate import scores
from distillguard.lab.harvest import HarvestResult, HarvestSettings, Outcome, harvest
from distillguard.lab.loopback import serving
from distillguard.lab.tasks import Task, make_tasks
from distillguard.lab.train import (
    Example,
    ModelSpec,
    TrainSettings,
    examples_from_tasks,
    fresh_model,
    run_key,
    train_model,
)
from distillguard.models.generate import Model
from distillguard.records import (
    Baselines,
    BaselineSizes,
    CanaryTest,
    ForensicTest,
    HarvestSummary,
    LabResults,
    LabRun,
    LogitsProcessor,
    PolicyRecord,
)

Progress = Callable[[str, int, int | None], None]  # (stage, advance, total), as the CLI's bars take it


class Architecture(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    layers: int = Field(4, ge=1)
    width: int = Field(64, ge=8)
    heads: int = Field(4, ge=1)
    context: int = Field(192, ge=32)
    vocab: int = Field(512, ge=300)

    def spec(self) -> ModelSpec:
        return ModelSpec(self.layers, self.width, self.heads, self.context, self.vocab)


class Training(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    steps: int = Field(1500, ge=0)
    batch: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup: int = Field(100, ge=1)

    def settings(self, seed: int) -> TrainSettings:
        return TrainSettings(self.steps, self.batch, self.lr, seed, self.warmup)


class LabConfig(BaseModel):
    """One experiment; ``distillguard lab run CONFIG.toml`` reads it, ``--preset`` picks a built-in one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int = 0
    tasks: list[str] = ["add", "sub", "tool"]
    teacher_examples: int = Field(20000, ge=1)
    architecture: Architecture = Architecture()
    teacher: Training = Training(steps=3000)
    student: Training = Training(steps=2000)
    eval_tasks: int = Field(300, ge=1)
    harvest_sizes: list[int] = Field([300, 1000], min_length=1)
    accounts: int = Field(20, ge=1, description="attacker accounts (one API key each)")
    rate: float = Field(100.0, gt=0, description="harvest requests per second, all accounts together")
    concurrency: int = Field(32, ge=1)
    max_tokens: int = Field(128, ge=1, description="per request; prompt + max_tokens must fit the context")
    harvest_temperature: float = Field(0.0, ge=0, le=2, description="the attacker's sampling temperature (0: greedy; "
                                       "1 is an OpenAI-style API's default); sampled harvests send a seed per "
                                       "prompt, so they repeat")
    defences: list[str] = ["none", "withhold_reasoning"]
    small_data: int = Field(100, ge=1, description="ground-truth examples of the small-data baseline")
    watermark_delta: float = Field(2.0, ge=0, description="green-list strength of the 'watermark' defence")
    canary_share: float = Field(0.05, gt=0, le=1, description="share of answers the 'canary' defence marks")
    antidistillation_lambda: float = Field(0.1, ge=0, description="tilt strength of the 'antidistillation' defence")
    antidistillation_epsilon: float = Field(1e-4, gt=0, le=1, description="its finite-difference step")
    proxy_steps: int = Field(300, ge=0, description="training steps of its proxy student (0: the untrained init)")
    proxy_examples: int = Field(1000, ge=1, description="ground-truth examples the proxy trains on")
    proxy_held_out: int = Field(128, ge=1, description="held-out tasks the proxy's loss gradient is taken on")
    flagged_share: float = Field(1.0, ge=0, le=1, description="share of the attacker's accounts the defence applies "
                                                             "to (the detector flagged them); the others harvest "
                                                             "plainly (the mixing attacker)")
    canary_decoys: int = Field(19, ge=1, description="look-alikes per canary in the students' canary test")
    smoke: bool = Field(False, description="a plumbing check: every stage runs for real on models too small to "
                                           "learn the tasks, so its accuracies (about 0) measure nothing")


PRESETS: dict[str, LabConfig] = {
    # Plumbing in under a minute: every stage runs for real, on models too small to learn the tasks (a held-out
    # tool call copies an unseen number from the request, which takes a model thousands of steps; see `smoke`).
    # Context and max_tokens fit the longest tool call (about 45 prompt and 93 reply tokens in this vocabulary):
    # at 128 and 64 every answer was cut off, and every accuracy was 0 whatever the models learned.
    "tiny": LabConfig(tasks=["tool"], teacher_examples=400,
                      architecture=Architecture(layers=1, width=32, heads=2, context=160, vocab=320),
                      teacher=Training(steps=60, batch=16, lr=3e-3, warmup=10),
                      student=Training(steps=30, batch=16, lr=3e-3, warmup=5),
                      eval_tasks=40, harvest_sizes=[24, 48], accounts=4, rate=200.0, concurrency=16,
                      max_tokens=100, small_data=24, defences=["none", "withhold_reasoning", "watermark", "canary"],
                      canary_share=0.25, smoke=True),
    "default": LabConfig(),
}


def preset(name: str) -> LabConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown lab preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def load_config(path: Path) -> LabConfig:
    return validated(LabConfig, read_toml(path, "lab config"), "lab config")


DEFENCES = ("none", "withhold_reasoning", "summarize_reasoning", "watermark", "canary", "antidistillation")
"""A lab defence is one of these, or several joined by ``+`` (a stack: ``antidistillation+summarize_reasoning``)."""
WATERMARK_VERSION = "lab-watermark"


def _policy(defence: str, accounts: list[str], config: LabConfig | None = None) -> list[PolicyRecord]:
    """The gateway policy that applies ``defence`` (one, or a ``+`` stack) to the attacker's accounts (the first
    ``flagged_share`` of them: the accounts the detector flagged)."""
    config = config or LabConfig()
    unknown = [d for d in defence.split("+") if d not in DEFENCES]
    if unknown:
        raise ConfigError(f"unknown defence {unknown[0]!r}; choose from {', '.join(DEFENCES)} "
                          "(or several joined by '+')")
    flagged = accounts[:round(len(accounts) * config.flagged_share)]
    if "+" not in defence:
        return _policy_one(defence, flagged, config)
    merged: list[PolicyRecord] = []
    for a in flagged:
        parts = [r for d in defence.split("+") for r in _policy_one(d, [a], config)]
        merged.append(PolicyRecord(subject=f"account:{a}", action="monitor", reason=f"lab defence: {defence}",
                                   transforms=sorted({t for r in parts for t in r.transforms or []}) or None,
                                   logits_processors=[x for r in parts for x in r.logits_processors or []] or None))
    return merged


def _policy_one(defence: str, accounts: list[str], config: LabConfig) -> list[PolicyRecord]:
    if defence == "none":
        return []
    if defence == "antidistillation":
        tilt = LogitsProcessor.model_validate(antidistillation_spec(config))
        return [PolicyRecord(subject=f"account:{a}", action="monitor", reason="lab defence: antidistillation",
                             logits_processors=[tilt]) for a in accounts]
    if defence in ("withhold_reasoning", "summarize_reasoning"):
        return [PolicyRecord(subject=f"account:{a}", action="monitor", reason=f"lab defence: {defence}",
                             transforms=[defence]) for a in accounts]
    if defence == "watermark":
        mark = LogitsProcessor.model_validate({"name": "watermark", "version": WATERMARK_VERSION})
        return [PolicyRecord(subject=f"account:{a}", action="monitor", reason="lab defence: watermark",
                             logits_processors=[mark]) for a in accounts]
    if defence == "canary":
        return [PolicyRecord(subject=f"account:{a}", action="monitor", reason="lab defence: canary")
                for a in accounts]
    raise ConfigError(f"unknown defence {defence!r}; choose from {', '.join(DEFENCES)}")


def watermark_key(config: LabConfig) -> dict[str, Any]:
    """The lab's watermark key: green-list, derived from the seed so that runs repeat."""
    return {"scheme": "greenlist", "version": WATERMARK_VERSION, "key": 1_000_003 * (config.seed + 1),
            "delta": config.watermark_delta}


def antidistillation_spec(config: LabConfig) -> dict[str, Any]:
    """The processor spec of the lab's 'antidistillation' defence (its version names the proxy's recipe)."""
    return {"name": "antidistillation", "lambda": config.antidistillation_lambda,
            "epsilon": config.antidistillation_epsilon, "version": proxy_version(config)}


def proxy_version(config: LabConfig) -> str:
    """``lab-`` and a hash of what makes the proxy: a changed recipe is a new version, an unchanged one is reused."""
    recipe = {k: config.model_dump()[k] for k in ("seed", "tasks", "teacher_examples", "architecture", "student",
                                                  "eval_tasks", "harvest_sizes", "proxy_steps", "proxy_examples",
                                                  "proxy_held_out")}
    return "lab-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def prepare_proxy(config: LabConfig, teacher: Model, root: Path) -> PreparedProxy:
    """The lab's proxy student for antidistillation, prepared once per recipe under ``root``.

    The defender's guess at the attacker's student: the students' architecture and training settings, from
    another seed (it does not know the attacker's init), trained on ground-truth examples it owns; its loss
    gradient is taken on ground-truth traces of tasks in neither the evaluation set nor the attacker's pool.
    """
    train, held_out, pool = task_sets(config)
    seen = {t.prompt for t in (*train, *held_out, *pool)}
    extra = [t for t in make_tasks(config.tasks, config.proxy_held_out * 3, seed=config.seed + 3)
             if t.prompt not in seen][:config.proxy_held_out]
    settings = config.student.settings(config.seed + 7)
    return prepare(root, proxy_version(config), tokenizer=teacher.tokenizer,
                   train=examples_from_tasks(train[:config.proxy_examples]), held_out=examples_from_tasks(extra),
                   spec=config.architecture.spec(), settings=replace(settings, steps=config.proxy_steps))


class _Quiet:
    def __call__(self, stage: str, n: int, total: int | None) -> None:
        pass


def run(config: LabConfig, out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Run the experiment into ``out``; returns (and writes) ``results.json`` (``records.LabResults`` as JSON),
    and writes ``curves.svg``."""
    for d in config.defences:
        _policy(d, [], config)  # unknown defences fail before anything trains
    tick = progress or _Quiet()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    spec = config.architecture.spec()
    train, held_out, pool = task_sets(config)
    teacher = train_model(examples_from_tasks(train), spec, settings=config.teacher.settings(config.seed),
                          out=out / "teacher", progress=_bar(tick, "teacher"))
    teacher_overall, teacher_kinds = scores(teacher, held_out, config.max_tokens)
    student_cfg = config.student.settings(config.seed)

    def student(examples: list[Example], label: str,
                canaries: list[dict[str, Any]] | None = None) -> tuple[float, dict[str, float], CanaryTest | None]:
        """(held-out accuracy, per task kind, the canary test when ``canaries``) of a student on ``examples``."""
        model = train_model(examples, spec, settings=student_cfg,
                            out=out / "students" / run_key(examples, spec, settings=student_cfg)[:16],
                            progress=_bar(tick, label))
        overall, kinds = scores(model, held_out, config.max_tokens)
        test = _canary_test(config, model, examples, canaries) if canaries is not None else None
        return round(overall, 4), kinds, test

    runs: list[LabRun] = []
    summaries: dict[str, HarvestSummary] = {}
    for defence, harvested in harvest_all(config, teacher, prompts=[t.prompt for t in pool], out=out,
                                             tick=tick).items():
        outcomes = harvested.outcomes
        canaries = _sent_canaries(out, defence) if "canary" in defence.split("+") else None
        summaries[defence] = HarvestSummary.model_validate({
            **harvested.summary(), "watermark": _mark_in(config, teacher, outcomes) if defence == "watermark" else None,
            "canaries": len(canaries) if canaries is not None else None})
        for size in config.harvest_sizes:
            pairs = [o for o in outcomes[:size] if o.status == "ok"]
            variants = [True, False] if any(o.reasoning for o in pairs) else [False]
            for with_reasoning in variants:
                examples = [Example(o.prompt, o.answer or "", o.reasoning if with_reasoning else None) for o in pairs]
                label = f"student {defence} {size}{' +r' if with_reasoning else ''}"
                accuracy, by_kind, test = student(examples, label, canaries) if examples else (0.0, {}, None)
                runs.append(LabRun(defence=defence, prompts=size, harvested=len(pairs), with_reasoning=with_reasoning,
                                   student_accuracy=accuracy, student_by_kind=by_kind, canary_test=test))
    n = max(config.harvest_sizes)
    untrained = scores(fresh_model(spec, teacher.tokenizer, config.seed), held_out, config.max_tokens)[0]
    baselines = Baselines(untrained=round(untrained, 4),
                          ground_truth_same_n=student(examples_from_tasks(pool[:n]), "ground truth")[0],
                          small_data=student(examples_from_tasks(train[:config.small_data]), "small data")[0])
    results = LabResults(config=config.model_dump(), teacher_accuracy=round(teacher_overall, 4),
                         teacher_by_kind=teacher_kinds, runs=runs, harvests=summaries, baselines=baselines,
                         baselines_n=BaselineSizes(ground_truth_same_n=n, small_data=config.small_data),
                         seconds=round(time.monotonic() - started, 1))
    (out / "results.json").write_text(json.dumps(results.as_json(), indent=2))
    (out / "curves.svg").write_text(curves_svg(results))
    return results.as_json()


def task_sets(config: LabConfig) -> tuple[list[Task], list[Task], list[Task]]:
    """(teacher's training tasks, held-out tasks, attacker's prompt pool); held-out prompts appear in neither."""
    train = make_tasks(config.tasks, config.teacher_examples, seed=config.seed)
    seen = {t.prompt for t in train}
    held_out = [t for t in make_tasks(config.tasks, config.eval_tasks * 3, seed=config.seed + 1)
                if t.prompt not in seen][:config.eval_tasks]
    excluded = {t.prompt for t in held_out}
    pool = [t for t in make_tasks(config.tasks, max(config.harvest_sizes) * 3, seed=config.seed + 2)
            if t.prompt not in excluded][:max(config.harvest_sizes)]
    return train, held_out, pool


def harvest_all(config: LabConfig, teacher: Model, *, prompts: list[str], out: Path,
                tick: Progress | None = None) -> dict[str, HarvestResult]:
    """Serve the teacher, and harvest ``prompts`` through one gateway per defence of ``config`` (outcomes in
    prompt order; each also in ``OUT/harvest-DEFENCE.jsonl``)."""
    tick = tick or _Quiet()
    from distillguard.gateway.app import Gateway, create_app
    from distillguard.gateway.canary import CanarySettings
    from distillguard.gateway.config import GatewaySettings, LimitSettings
    from distillguard.gateway.keys import KeyStore
    from distillguard.gateway.policy import Policy
    from distillguard.gateway.segments import SegmentLog
    from distillguard.lab.antidistillation import ProxyStore
    from distillguard.lab.serve import create_app as model_app
    from distillguard.watermark.keyring import Keyring

    keys_path = out / "gateway" / "keys.db"
    keys_path.parent.mkdir(parents=True, exist_ok=True)
    keys_path.unlink(missing_ok=True)
    store = KeyStore(keys_path)
    accounts = [f"lab-attacker-{i:03d}" for i in range(config.accounts)]
    secrets = [store.add(a)[0] for a in accounts]
    harvests = {}
    keyring = Keyring.from_records([watermark_key(config)])
    proxies = ProxyStore(out / "antidistillation")
    if any("antidistillation" in d.split("+") for d in config.defences):
        prepare_proxy(config, teacher, proxies.root)
    with serving(model_app(teacher, max_batch=config.concurrency, keyring=keyring, proxies=proxies)) as upstream:
        for defence in config.defences:
            policy_path = out / "gateway" / f"policy-{defence}.json"
            policy_path.write_text(json.dumps([r.as_json() for r in _policy(defence, accounts, config)], indent=2))
            canaries = CanarySettings(enabled="canary" in defence.split("+"), key=f"lab-canary-{config.seed}",
                                      share=config.canary_share)
            settings = GatewaySettings(upstream=f"{upstream}/v1", keys=keys_path, policy=policy_path,
                                       log_dir=out / "gateway" / f"log-{defence}", canaries=canaries,
                                       limits=LimitSettings(account_requests_per_minute=60_000,
                                                            account_tokens_per_minute=1e9))
            shutil.rmtree(settings.log_dir, ignore_errors=True)  # this run's log only (canaries are read from it)
            log = SegmentLog(settings.log_dir, flush_interval=settings.flush_interval)
            gateway = Gateway(settings, KeyStore(keys_path), Policy(policy_path), log)
            try:
                with serving(create_app(gateway)) as url:
                    result = harvest(prompts, HarvestSettings(f"{url}/v1", tuple(secrets), teacher.name,
                                                              config.rate, config.concurrency, config.max_tokens,
                                                              temperature=config.harvest_temperature,
                                                              seed=harvest_seed(config)),
                                     out=out / f"harvest-{defence}.jsonl", progress=_bar(tick, f"harvest {defence}"))
            finally:
                log.close()
            harvests[defence] = result
    return harvests


def harvest_seed(config: LabConfig) -> int | None:
    """The sampled harvest's base seed (prompt ``i`` is sampled with seed + i), from the lab's; None when greedy."""
    return 1_000_003 * (config.seed + 1) + 17 if config.harvest_temperature > 0 else None


def _mark_in(config: LabConfig, teacher: Model, outcomes: list[Outcome]) -> ForensicTest:
    """The watermark test on the whole harvest (answers and reasoning, in the teacher's tokens)."""
    from distillguard.forensics.radioactivity import radioactivity_from_tokens
    from distillguard.watermark.base import load_scheme

    scheme = load_scheme("greenlist", watermark_key(config))
    tok = teacher.tokenizer
    ids = [tok(f"{o.reasoning or ''}{o.answer or ''}", add_special_tokens=False)["input_ids"]
           for o in outcomes if o.status == "ok"]
    return ForensicTest.model_validate(
        radioactivity_from_tokens(scheme, ids, vocab=int(teacher.model.config.vocab_size)).to_json())


def _sent_canaries(out: Path, defence: str) -> list[dict[str, Any]]:
    """The canaries the gateway recorded for this defence's harvest (its log is closed by now)."""
    from distillguard.forensics.canary import read_canaries

    return read_canaries(out / "gateway" / f"log-{defence}")


def _canary_test(config: LabConfig, model: Model, examples: list[Example],
                 canaries: list[dict[str, Any]]) -> CanaryTest:
    """The forensic canary test (open setting) on a student: canaries in its training data against decoys.

    The examiner would test every canary sent; here the students train on a prefix of the harvest, so
    the canaries tested are those its training answers carry. Decoys are seeded, so runs repeat.
    """
    from distillguard.forensics.canary import canary_ranks, decoys_for
    from distillguard.stats import rank_sum_test

    trained = "\n".join(e.answer for e in examples)
    used = [c for c in canaries if c["text"] in trained]
    if not used:
        return CanaryTest(canaries=0, ranked_first=0, decoys=config.canary_decoys, p_value=1.0)
    decoys = decoys_for(used, config.canary_decoys, seed_key=f"lab-decoy-{config.seed}-")
    ranks = canary_ranks(model.model, model.tokenizer, canaries=used, decoys=decoys)
    result = rank_sum_test(ranks, config.canary_decoys, ", canaries in the student's training answers")
    return CanaryTest.model_validate({"canaries": len(used), "ranked_first": sum(r == 0 for r in ranks),
                                     "ranks": ranks, "decoys": config.canary_decoys, **result.to_json()})


def _bar(tick: Progress, stage: str) -> Callable[[int, int], None]:
    state = {"done": 0}

    def advance(done: int, total: int) -> None:
        tick(stage, done - state["done"], total)
        state["done"] = done

    return advance


def curves_svg(results: LabResults) -> str:
    """Student accuracy against harvested exchanges, one curve per defence (and reasoning setting)."""
    from distillguard.report.charts import lines_svg

    series: dict[str, list[tuple[float, float]]] = {}
    for r in results.runs:
        name = f"{r.defence} · {'with' if r.with_reasoning else 'without'} reasoning"
        series.setdefault(name, []).append((float(r.harvested), r.student_accuracy))
    refs = {"teacher": results.teacher_accuracy,
            f"ground truth, n={results.baselines_n.ground_truth_same_n}": results.baselines.ground_truth_same_n}
    return lines_svg(series, references=refs, x_label="harvested exchanges", y_label="student held-out accuracy")
