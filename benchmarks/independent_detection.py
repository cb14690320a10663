"""Detection quality on traffic from an independent generator, through the real CLI.

For each seed, ``benchmarks/independent_traffic.py`` writes the current period, the previous
period as it was (unvetted reference) and the previous period without the campaigns (vetted
reference). Each is scanned the way a user would (``distillguard scan``, then
``distillguard bench``) with no reference, the unvetted one and the vetted one; the figures
of every run, the campaigns' drawn tactics and anything the product warned about go to
``benchmarks/results/NAME.json`` and ``NAME.md``.

Example::

    python benchmarks/independent_detection.py --seeds 1 --workdir /tmp/ind
    python benchmarks/independent_detection.py --seeds 1-5 --name independent_detection
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
GENERATOR = HERE / "independent_traffic.py"
MODES = {"none": "no reference", "unvetted": "unvetted reference", "vetted": "vetted reference"}
# metric key -> (label, path in the bench JSON, higher is better)
METRICS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "roc_auc": ("ROC-AUC", ("roc_auc",), True),
    "recall": ("recall", ("flagged", "recall"), True),
    "recall_50plus": ("recall ≥50 ex.", ("recall_50plus",), True),
    "campaign_recall": ("campaign recall", ("campaigns", "recall"), True),
    "fpr": ("benign FPR", ("flagged", "fpr"), False),
    "ari": ("ARI", ("cluster_ari",), True),
    "benign_in_campaigns": ("benign in campaigns", ("benign_in_attack_campaigns",), False),
    "precision": ("precision", ("flagged", "precision"), True),
    "exchanges_caught": ("attack exchanges caught", ("attack_exchange_share_caught",), True),
}


def load_generator() -> ModuleType:
    """Import the generator module from its file (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("independent_traffic", GENERATOR)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["independent_traffic"] = mod
    spec.loader.exec_module(mod)
    return mod


def parse_seeds(text: str) -> list[int]:
    """'1-5' or '1,3,4' -> list of ints."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out += range(int(lo), int(hi) + 1)
        elif part.strip():
            out.append(int(part))
    return out


def run(cmd: list[str], env: dict[str, str], timeout: float = 3600) -> dict[str, Any]:
    """Run a command; returns rc, seconds, stdout and stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    return {
        "rc": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 2),
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def generate(seed: int, out: Path, scale: float, env: dict[str, str], *flags: str) -> dict[str, Any]:
    """Write one traffic directory with the independent generator."""
    cmd = [sys.executable, str(GENERATOR), "--seed", str(seed), "--out", str(out), "--scale", str(scale), *flags]
    res = run(cmd, env)
    if res["rc"] != 0:
        raise RuntimeError(f"generator failed ({' '.join(cmd)}):\n{res['stderr'][-2000:]}")
    stats = json.loads(res["stderr"])
    return {
        "accounts": stats["accounts"],
        "exchanges": stats["exchanges"],
        "seconds": res["seconds"],
        "groups": stats["groups"],
        "period": stats["period"],
    }


def dig(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Nested lookup; None where a key is missing."""
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def notable_lines(text: str) -> list[str]:
    """Warnings, errors and tracebacks in a command's output, deduplicated, numbers kept."""
    keep = []
    for line in text.splitlines():
        if re.search(r"WARNING|ERROR|Error|Traceback|quarantin|CRITICAL", line) and line not in keep:
            keep.append(line.strip())
    return keep[:40]


def scan_and_bench(cur: Path, ref: Path | None, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """``distillguard scan`` then ``distillguard bench``; the metrics and what the product said."""
    out, db, metrics_file = work / "out", work / "store.duckdb", work / "metrics.json"
    cmd = ["distillguard", "scan", str(cur), "--out", str(out), "--db", str(db)]
    if ref is not None:
        cmd += ["--reference", str(ref)]
    scan = run(cmd, env)
    rec: dict[str, Any] = {
        "scan_cmd": " ".join(cmd),
        "scan_rc": scan["rc"],
        "scan_seconds": scan["seconds"],
        "scan_notes": notable_lines(scan["stdout"] + "\n" + scan["stderr"]),
    }
    m = re.search(r"(\d+) rows quarantined", scan["stdout"] + scan["stderr"])
    rec["quarantined"] = int(m.group(1)) if m else None
    if scan["rc"] != 0:
        rec["scan_error_tail"] = (scan["stdout"] + scan["stderr"])[-3000:]
        return rec
    if rec["quarantined"]:
        q = run(["distillguard", "quarantine", "--db", str(db), "--json"], env)
        rec["quarantine_sample"] = q["stdout"][:4000]
    summary = out / "summary.json"
    if summary.exists():
        rec["summary"] = json.loads(summary.read_text())
    bench = run(["distillguard", "bench", str(cur), str(out), "--json", str(metrics_file)], env)
    rec["bench_rc"] = bench["rc"]
    if bench["rc"] != 0:
        rec["bench_error_tail"] = (bench["stdout"] + bench["stderr"])[-3000:]
        return rec
    raw = json.loads(metrics_file.read_text())
    rec["raw"] = raw
    rec.update({k: dig(raw, path) for k, (_, path, _) in METRICS.items()})
    rec["fpr_by_population"] = {p: v.get("fpr") for p, v in (raw.get("benign_fpr_by_population") or {}).items()}
    rec["recall_by_campaign"] = {c: v.get("recall") for c, v in (raw.get("recall_by_campaign") or {}).items()}
    return rec


def cleanup(work: Path) -> None:
    """Delete the stores and the bulky scan outputs; keep the small JSON files."""
    for p in work.glob("*.duckdb*"):
        p.unlink()
    for p in work.glob("*.spark"):
        shutil.rmtree(p, ignore_errors=True)
    out = work / "out"
    if out.exists():
        for p in out.iterdir():
            if p.is_file() and p.suffix != ".json":
                p.unlink()


def one_seed(seed: int, wd: Path, scale: float, env: dict[str, str], gen: ModuleType, keep: bool) -> dict[str, Any]:
    """Generate the three traffic directories of a seed and run the three scans."""
    base = wd / f"seed{seed}"
    dirs = {"current": base / "current", "previous": base / "previous", "vetted": base / "previous-vetted"}
    traffic = {
        "current": generate(seed, dirs["current"], scale, env),
        "previous": generate(seed, dirs["previous"], scale, env, "--period", "previous"),
        "vetted": generate(seed, dirs["vetted"], scale, env, "--period", "previous", "--benign-only"),
    }
    campaigns = gen.describe(gen.build_world(seed, scale))
    for c in campaigns:
        c["current"] = traffic["current"]["groups"].get(c["campaign_id"], {"accounts": 0, "exchanges": 0})
    refs = {"none": None, "unvetted": dirs["previous"], "vetted": dirs["vetted"]}
    runs = {}
    for mode, ref in refs.items():
        work = base / f"scan-{mode}"
        work.mkdir(parents=True, exist_ok=True)
        runs[mode] = scan_and_bench(dirs["current"], ref, work, env)
        cleanup(work)
        print(
            f"seed {seed} {mode}: "
            + ", ".join(f"{k}={_f(runs[mode].get(k))}" for k in METRICS)
            + f", scan {runs[mode]['scan_seconds']} s",
            flush=True,
        )
    if not keep:
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    for t in traffic.values():
        t.pop("groups")
    return {"seed": seed, "traffic": traffic, "campaigns": campaigns, "runs": runs}


def _f(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _proc_field(path: str, key: str) -> str:
    """First ``key: value`` of a /proc file ('' when unreadable)."""
    try:
        with open(path) as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith(key)), "")
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """Where the benchmark ran."""
    cpu = _proc_field("/proc/cpuinfo", "model name")
    mem = _proc_field("/proc/meminfo", "MemTotal")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(
        subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    )
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "platform": platform.platform(),
        "commit": commit,
        "worktree_dirty": dirty,
    }


def aggregate(seeds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per mode and metric: mean and worst seed."""
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        out[mode] = {}
        for key, (_, _, higher) in METRICS.items():
            vals = [(s["runs"][mode].get(key), s["seed"]) for s in seeds]
            vals = [(v, sd) for v, sd in vals if v is not None]
            if not vals:
                out[mode][key] = {"mean": None, "worst": None, "worst_seed": None}
                continue
            worst = min(vals) if higher else max(vals)
            out[mode][key] = {"mean": statistics.fmean(v for v, _ in vals), "worst": worst[0], "worst_seed": worst[1]}
        secs = [s["runs"][mode]["scan_seconds"] for s in seeds]
        out[mode]["scan_seconds"] = {"mean": statistics.fmean(secs), "worst": max(secs)}
    return out


def population_table(seeds: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: benign FPR per population and mode (mean / worst seed)."""
    pops = sorted({p for s in seeds for r in s["runs"].values() for p in (r.get("fpr_by_population") or {})})
    lines = ["| population | " + " | ".join(MODES.values()) + " |", "|---|" + "---:|" * len(MODES)]
    for p in pops:
        cells = []
        for mode in MODES:
            vals = [s["runs"][mode].get("fpr_by_population", {}).get(p) for s in seeds]
            vals = [v for v in vals if v is not None]
            cells.append(f"{statistics.fmean(vals):.3f} / {max(vals):.3f}" if vals else "—")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def tactics_text(c: dict[str, Any]) -> str:
    """One line of a campaign's drawn tactics."""
    t = c["tactics"]
    focus = ", ".join(f"{k} {v:.0%}" for k, v in t["focus"].items())
    shapes = "/".join(t["shapes"])
    parts = [
        f"focus {focus}",
        f"{t['accounts']} accounts",
        f"signup {t['signup']}",
        f"email {t['email']}",
        f"proxy {t['proxy']}",
        f"payment {t['payment']}",
        f"org {t['org']}",
        f"client {t['client']}",
        f"templates {t['templates']}",
        f"elicitation {t['elicitation']}",
        f"timing {t['timing']} ({t['hours']})",
        f"filler {t['filler']:.0%}",
        f"pivot {'yes' if t['pivot'] else 'no'}",
        f"shapes {shapes}",
        f"{t['daily_volume']}/day",
    ]
    if t["json"]:
        parts.append("JSON output")
    if t["n_samples"] > 1:
        parts.append(f"n={t['n_samples']}")
    if "agentic" in t["focus"]:
        parts.append(f"agent {t['agent_mode']}" + (", mimics a dev tool's prompt" if t["mimic_agent_prompt"] else ""))
    if t["redact"]:
        parts.append("text redacted")
    return "; ".join(parts)


def campaign_table(seeds: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: recall per campaign and mode, with the campaign's tactics."""
    head = "| seed | campaign | accounts | exchanges | " + " | ".join(MODES.values()) + " | tactics |"
    lines = [head, "|---:|---|---:|---:|" + "---:|" * len(MODES) + "---|"]
    for s in seeds:
        for c in s["campaigns"]:
            cid = c["campaign_id"]
            rec = [s["runs"][m].get("recall_by_campaign", {}).get(cid) for m in MODES]
            cells = " | ".join(_f(r) for r in rec)
            cur = c["current"]
            lines.append(
                f"| {s['seed']} | {cid} | {cur['accounts']} | {cur['exchanges']} | {cells} | {tactics_text(c)} |"
            )
    return lines


def missed(seeds: list[dict[str, Any]]) -> list[str]:
    """Bullet lines: each campaign with recall below 0.5 in some mode, with the modes."""
    out = []
    for s in seeds:
        for c in s["campaigns"]:
            rec = {m: s["runs"][m].get("recall_by_campaign", {}).get(c["campaign_id"]) for m in MODES}
            low = [f"{MODES[m]} {_f(r)}" for m, r in rec.items() if r is not None and r < 0.5]
            if low:
                out.append(
                    f"- seed {s['seed']} {c['campaign_id']} ({c['current']['accounts']} accounts): " + ", ".join(low)
                )
    return out or ["- none"]


def markdown(data: dict[str, Any]) -> str:
    """The results page."""
    agg, seeds = data["aggregate"], data["seeds"]
    lines = [
        "# Detection on independently generated traffic",
        "",
        f"`python benchmarks/independent_detection.py --seeds {data['seeds_arg']} --name {data['name']}` "
        f"(scale {data['scale']}, commit {data['machine']['commit'][:10]}, {data['machine']['cpus']} CPUs, "
        f"{data['machine']['cpu']}; total {data['wall_seconds'] / 60:.1f} min).",
        "",
        "Traffic from `benchmarks/independent_traffic.py`, a generator written without reference to the "
        "product's simulator or detectors: benign populations (chat, VPN chat, developers with coding agents, "
        "power users, enterprise batch jobs, SaaS backends, users of one bring-your-own-key app, eval harnesses, "
        "university classes, researchers, offices sharing a card and a NAT) and 3-5 campaigns per seed with tactics "
        "drawn at random. Each seed is scanned with no reference, with the previous period as it was (unvetted, "
        "campaigns included) and with the previous period's benign accounts only (vetted). "
        "Each cell: mean over seeds / worst seed.",
        "",
        "| metric | " + " | ".join(MODES.values()) + " |",
        "|---|" + "---:|" * len(MODES),
    ]
    for key, (label, _, _) in METRICS.items():
        cells = [f"{_f(agg[m][key]['mean'])} / {_f(agg[m][key]['worst'])}" for m in MODES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| scan seconds | "
        + " | ".join(f"{agg[m]['scan_seconds']['mean']:.0f} / {agg[m]['scan_seconds']['worst']:.0f}" for m in MODES)
        + " |"
    )
    lines += [
        "",
        "Traffic per seed (current period): "
        + "; ".join(
            f"seed {s['seed']}: {s['traffic']['current']['accounts']} accounts, "
            f"{s['traffic']['current']['exchanges']} exchanges"
            for s in seeds
        )
        + ".",
        "",
    ]
    lines += ["## Benign FPR per population (mean / worst seed)", "", *population_table(seeds), ""]
    lines += [
        "## Recall per campaign (share of its accounts flagged) and its drawn tactics",
        "",
        *campaign_table(seeds),
        "",
    ]
    lines += ["## Campaigns missed (under half of their accounts flagged)", "", *missed(seeds), ""]
    lines += ["## What the product said", ""]
    for s in seeds:
        for mode in MODES:
            r = s["runs"][mode]
            notes = [n for n in r.get("scan_notes", []) if not re.search(r"certify a false-positive|^0 rows quar", n)]
            status = f"scan rc {r['scan_rc']}, bench rc {r.get('bench_rc')}, quarantined {r.get('quarantined')}"
            lines.append(f"- seed {s['seed']}, {MODES[mode]}: {status}" + (": " + " | ".join(notes) if notes else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1-5", help="'1-5' or '1,2,3'")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory, removed at the end")
    ap.add_argument("--name", default="independent_detection", help="stem of the results files")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--keep-traffic", action="store_true", help="keep the generated traffic directories")
    args = ap.parse_args(argv)
    env = {**os.environ, "DISTILLGUARD_DATA_DIR": os.environ.get("DISTILLGUARD_DATA_DIR", "/work/shared/data")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    gen = load_generator()
    wd = args.workdir or Path(tempfile.mkdtemp(prefix="independent-detection-"))
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        seeds = [one_seed(s, wd, args.scale, env, gen, args.keep_traffic) for s in parse_seeds(args.seeds)]
    finally:
        if args.workdir is None:
            shutil.rmtree(wd, ignore_errors=True)
    data = {
        "name": args.name,
        "seeds_arg": args.seeds,
        "scale": args.scale,
        "machine": machine(),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "seeds": seeds,
    }
    data["aggregate"] = aggregate(seeds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    md = markdown(data)
    (RESULTS / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
