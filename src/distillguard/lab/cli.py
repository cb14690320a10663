"""``distillguard lab ...``: teacher, model server, harvest, student, evaluation, and the whole experiment.

Each command imports the lab's modules, and with them its heavy dependencies
(torch, transformers, openai), only when it runs (the imports inside the
commands below), so the rest of the CLI works without the ``lab`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from distillguard._cli_support import console, errors, out, progress, require_lab
from distillguard.errors import ConfigError
from distillguard.gateway.keys import KeyStore

lab = typer.Typer(help="The distillation lab: teacher, model server, harvest, student, experiment.",
                  no_args_is_help=True)

PresetOpt = Annotated[str, typer.Option(help="Built-in configuration: tiny or default.")]
ConfigFileOpt = Annotated[Path | None, typer.Option("--config", help="Lab configuration TOML (overrides --preset).")]
TasksOpt = Annotated[str | None, typer.Option(help="Task kinds, comma-separated (default: the configuration's).")]


def _config(preset_name: str, config: Path | None) -> Any:
    from distillguard.lab.experiment import load_config, preset  # the lab extra: see the module docstring

    return load_config(config) if config is not None else preset(preset_name)


@lab.command("serve")
def lab_serve(
    model: Annotated[Path, typer.Option(help="A local Hugging Face model directory (config.json, tokenizer).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    name: Annotated[str | None, typer.Option(help="Model id clients use (default: the directory name).")] = None,
    max_batch: Annotated[int, typer.Option(help="Requests decoded together at most.")] = 32,
    watermark_keys: Annotated[Path | None, typer.Option(help="Watermark keyring (JSON) for the 'watermark' "
                                                              "processor (`distillguard watermark keygen`).")] = None,
    antidistillation: Annotated[Path | None, typer.Option(help="Proxy students of the 'antidistillation' processor, "
                                                                "one folder per version (`distillguard lab proxy`; "
                                                                "default: antidistillation/ beside --model).")] = None,
) -> None:
    """Serve a local causal LM as an OpenAI-compatible chat completions API.

    Answers in `content`, the model's <think> span in `reasoning_content`;
    requests may name logits processors (watermarks, sampling defences).

    Example: distillguard lab serve --model lab-out/teacher --port 8001
    """
    with errors():
        require_lab()
        from distillguard.lab.serve import serve  # the lab extra: see the module docstring

        serve(model, host=host, port=port, name=name, max_batch=max_batch, watermark_keys=watermark_keys,
              antidistillation=antidistillation)


@lab.command("teacher")
def lab_teacher(
    out_dir: Annotated[Path, typer.Option("--out", help="Model directory to write (reused when it holds this run).")]
    = Path("lab-out/teacher"),
    preset: PresetOpt = "default",
    config: ConfigFileOpt = None,
) -> None:
    """Train the teacher on ground-truth tasks with step-by-step traces (cached, deterministic).

    Example: distillguard lab teacher --preset default --out lab-out/teacher
    """
    with errors():
        require_lab()
        from distillguard.lab.evaluate import accuracy  # the lab extra: see the module docstring
        from distillguard.lab.experiment import task_sets
        from distillguard.lab.train import examples_from_tasks, train_model

        cfg = _config(preset, config)
        train, held_out, _ = task_sets(cfg)
        with progress() as tick:
            model = train_model(examples_from_tasks(train), cfg.architecture.spec(),
                                settings=cfg.teacher.settings(cfg.seed), out=out_dir,
                                progress=lambda d, t: tick("teacher", 1, t))
        out.print(f"teacher in {out_dir}; held-out accuracy {accuracy(model, held_out):.3f} "
                  f"on {len(held_out)} tasks")


@lab.command("harvest")
def lab_harvest(
    prompts: Annotated[Path | None, typer.Option(help="Prompt pool: JSONL of {\"prompt\": ...} or one per line.")]
    = None,
    tasks: TasksOpt = None,
    n: Annotated[int, typer.Option(help="Prompts to generate when no --prompts file is given.")] = 200,
    base_url: Annotated[str, typer.Option(help="The gateway (or server) to harvest, OpenAI-compatible.")]
    = "http://127.0.0.1:8080/v1",
    api_keys: Annotated[Path | None, typer.Option(help="File with one API key per line (one per account).")] = None,
    accounts: Annotated[int, typer.Option(help="With --keys: create this many lab accounts and use them.")] = 0,
    keys_file: Annotated[Path | None, typer.Option("--keys", help="The gateway's key store, to create accounts in.")]
    = None,
    model: Annotated[str | None, typer.Option(help="Model id (default: the first the server lists).")] = None,
    rate: Annotated[float, typer.Option(help="Requests per second, all accounts together.")] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="max_tokens of each request.")] = 160,
    allow_host: Annotated[list[str] | None, typer.Option(help="A non-loopback host you own (repeatable).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="Harvest file (JSONL, one outcome per prompt).")]
    = Path("harvest.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed of generated prompts.")] = 2,
) -> None:
    """Harvest a model through the gateway with N accounts at a set rate (official openai client).

    A measurement tool for your own servers: loopback only unless --allow-host names a host.

    Example: distillguard lab harvest --keys distillguard-keys.db --accounts 20 --rate 10 --tasks add,tool --n 500
    """
    with errors():
        require_lab()
        from distillguard.lab.harvest import HarvestSettings, harvest  # the lab extra: see the module docstring
        from distillguard.lab.loopback import allowed_url
        from distillguard.lab.tasks import make_tasks
        from distillguard.models.answers import read_prompts

        allowed_url(base_url, allow_host or ())  # before anything is read or created

        pool = read_prompts(prompts) if prompts else [t.prompt for t in make_tasks(
            (tasks or "add,sub,tool").split(","), n, seed=seed)]
        secrets = _attacker_keys(api_keys, accounts, keys_file)
        settings = HarvestSettings(base_url, tuple(secrets), model, rate, concurrency, max_tokens,
                                   allow_hosts=tuple(allow_host or ()))
        with progress() as tick:
            result = harvest(pool, settings, out=out_file, progress=lambda d, t: tick("harvest", 1, t))
        summary = result.summary()
        out.print(f"{summary['harvested']:,} of {summary['sent']:,} prompts harvested "
                  f"({summary['with_reasoning']:,} with reasoning) in {summary['seconds']:.1f} s → {out_file}; "
                  f"statuses {summary['statuses']}")


def _attacker_keys(api_keys: Path | None, accounts: int, keys_file: Path | None) -> list[str]:
    if api_keys is not None:
        try:
            secrets = [k.strip() for k in api_keys.read_text().splitlines() if k.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the API keys file {api_keys} (one key per line): {exc}") from exc
        if not secrets:
            raise ConfigError(f"{api_keys} holds no API key")
        return secrets
    if accounts > 0 and keys_file is not None:
        store = KeyStore(keys_file)
        return [store.add(f"lab-attacker-{i:03d}")[0] for i in range(accounts)]
    raise ConfigError("give --api-keys FILE, or --keys DB with --accounts N to create lab accounts")


@lab.command("student")
def lab_student(
    harvest_file: Annotated[Path, typer.Option("--harvest", help="A harvest file from `lab harvest`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model directory to write.")] = Path("lab-out/student"),
    with_reasoning: Annotated[bool, typer.Option(help="Train on the harvested reasoning too.")] = True,
    preset: PresetOpt = "default",
    config: ConfigFileOpt = None,
) -> None:
    """Train a fresh student on harvested pairs (architecture and training from the configuration).

    Example: distillguard lab student --harvest harvest.jsonl --out lab-out/student --no-with-reasoning
    """
    with errors():
        require_lab()
        from distillguard.lab.harvest import read_outcomes  # the lab extra: see the module docstring
        from distillguard.lab.train import Example, train_model

        cfg = _config(preset, config)
        pairs = [o for o in read_outcomes(harvest_file) if o.status == "ok"]
        if not pairs:
            raise ConfigError(f"{harvest_file} holds no harvested pair")
        examples = [Example(o.prompt, o.answer or "", o.reasoning if with_reasoning else None) for o in pairs]
        with progress() as tick:
            train_model(examples, cfg.architecture.spec(), settings=cfg.student.settings(cfg.seed), out=out_dir,
                        progress=lambda d, t: tick("student", 1, t))
        out.print(f"student trained on {len(examples):,} pairs "
                  f"({'with' if with_reasoning else 'without'} reasoning) → {out_dir}")


@lab.command("proxy")
def lab_proxy(
    teacher: Annotated[Path, typer.Option(help="The served model's directory (the proxy takes its tokenizer).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Proxies folder (default: antidistillation/ beside "
                                                                "--teacher, where `lab serve` looks).")] = None,
    preset: PresetOpt = "default",
    config: ConfigFileOpt = None,
) -> None:
    """Prepare the proxy student of the 'antidistillation' processor (once per recipe; prints its version).

    Example: distillguard lab proxy --teacher lab-out/teacher --preset default
    """
    with errors():
        require_lab()
        from distillguard.lab.experiment import antidistillation_spec, prepare_proxy  # the lab extra
        from distillguard.models.load import load_model

        cfg = _config(preset, config)
        made = prepare_proxy(cfg, load_model(teacher), out_dir or teacher.parent / "antidistillation")
        out.print(f"antidistillation version {made.version} in {made.path}: proxy loss {made.held_out_loss:.3f} on "
                  f"{made.held_out} held-out tasks, gradient norm {made.gradient_norm:.3g}")
        out.print(f"requests: {json.dumps({'logits_processors': [antidistillation_spec(cfg)]})}")


@lab.command("evaluate")
def lab_evaluate(
    model: Annotated[Path, typer.Option(help="A local model directory.")],
    tasks: TasksOpt = None,
    n: Annotated[int, typer.Option(help="Held-out tasks.")] = 300,
    preset: PresetOpt = "default",
    config: ConfigFileOpt = None,
) -> None:
    """Held-out accuracy of a model, per task kind (the experiment's held-out set).

    Example: distillguard lab evaluate --model lab-out/student
    """
    with errors():
        require_lab()
        from distillguard.lab.evaluate import kind_accuracy  # the lab extra: see the module docstring
        from distillguard.lab.experiment import task_sets
        from distillguard.models.load import load_model

        cfg = _config(preset, config)
        if tasks:
            cfg = cfg.model_copy(update={"tasks": tasks.split(",")})
        _, held_out, _ = task_sets(cfg.model_copy(update={"eval_tasks": n}))
        print(json.dumps({"model": str(model), "tasks": len(held_out),
                          "accuracy": kind_accuracy(load_model(model), held_out)}))


@lab.command("run")
def lab_run(
    config_file: Annotated[Path | None, typer.Argument(help="Lab configuration TOML.")] = None,
    preset: PresetOpt = "default",
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (results.json, curves.svg, models).")]
    = Path("lab-out"),
) -> None:
    """The whole experiment: teacher, server, gateway, harvest per defence, students, baselines.

    Writes OUT/results.json and OUT/curves.svg (student accuracy against harvested exchanges).

    Example: distillguard lab run --preset tiny --out lab-tiny
    """
    with errors():
        require_lab()
        from distillguard.lab.experiment import run  # the lab extra: see the module docstring

        cfg = _config(preset, config_file)
        with progress() as tick:
            results = run(cfg, out_dir, progress=tick)
        _print_results(results, out_dir)


def _print_results(results: dict[str, Any], out_dir: Path) -> None:
    smoke = bool(results["config"].get("smoke"))
    table = Table(title=f"teacher held-out accuracy {results['teacher_accuracy']:.3f}"
                        + (" (smoke run: models too small to learn)" if smoke else ""))
    for col in ("defence", "harvested", "reasoning", "student accuracy", "of teacher"):
        table.add_column(col, justify="right" if col not in ("defence", "reasoning") else "left")
    teacher = results["teacher_accuracy"] or 1.0
    for r in results["runs"]:
        table.add_row(r["defence"], f"{r['harvested']:,}", "with" if r["with_reasoning"] else "without",
                      f"{r['student_accuracy']:.3f}", f"{r['student_accuracy'] / teacher:.0%}")
    out.print(table)
    b = results["baselines"]
    out.print(f"baselines: untrained {b['untrained']:.3f}, ground truth (same n) {b['ground_truth_same_n']:.3f}, "
              f"small data (n={results['baselines_n']['small_data']}) {b['small_data']:.3f}")
    console.print(f"{out_dir / 'results.json'}, {out_dir / 'curves.svg'} ({results['seconds']:.0f} s)")
    if smoke:
        console.print("[yellow]a smoke run:[/] every stage ran for real, on models too small to learn the tasks, so "
                      "accuracies near 0 are expected and measure nothing; `--preset default` is the experiment "
                      "(README, Benchmarks)")
