"""Incremental scans and replay: what an hourly scan costs on a stored month, and replay hour by hour.

    python benchmarks/incremental.py [--scale 0.005] [--hours 6] [--replay-hours 0] [--part hourly|replay|both]
                                     [--workdir DIR]

1. **Hourly scans.** Simulates disclosure-2026 at ``--scale``, splits its exchanges into hourly
   files in day partitions (``exchanges/date=YYYY-MM-DD/hour=HH/part-0.parquet``, as a landing
   zone holds them), scans every hour but the last ``--hours`` with ``scan --incremental`` (the
   store's first scan), then adds one hour at a time and scans again, each as its own
   ``distillguard -v scan --incremental --window 30d`` process: wall time, the stages' times
   (from its log) and the peak resident memory of the process and its workers. A full scan of
   the same landing zone into a fresh store is timed for comparison. Target (#19): under 30 s
   and 4 GiB per hourly scan of ~15k new exchanges on a 30-day store of 10M exchanges.
2. **Replay.** ``replay`` of the same traffic with 1 h windows and a benign reference (as
   ``replay_detect.py``): its time and each campaign's time to detect. Target: under 60 s for
   disclosure-2026 x0.005 (337 windows; 418 s before the incremental path). ``--replay-hours N``
   replays only the traffic's first N hours (0: all of it); the campaigns' first flags are compared
   with ``results/replay_detect.json`` (the replay before the incremental path).

Writes benchmarks/results/incremental.{json,md}; ``--part`` runs one part and keeps the other's
figures from the last run. Times are those of the machine it runs on: on a shared machine (the
load is recorded) they are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
from _common import RESULTS, PeakTreeRss, machine, timed, workdir, write_result

from distillguard.bench.replay_metrics import campaign_detection_times
from distillguard.replay import replay
from distillguard.sim import generate, load_scenario
from distillguard.store import Store

_STAGE = re.compile(r"distillguard\.(?:pipeline|stages): (.+) took ([\d.]+) s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hours", type=int, default=6, help="hourly incremental scans to time")
    ap.add_argument("--replay-hours", type=float, default=0, help="replay only the first N hours (0: all)")
    ap.add_argument("--part", choices=("hourly", "replay", "both"), default="both")
    ap.add_argument("--compare", action="store_true",
                    help="also replay window by window from the exchanges (the path before #19) and compare")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the simulated traffic here")
    ap.add_argument("--render", action="store_true", help="only write the .md again from the .json")
    args = ap.parse_args()
    if args.render:
        result = json.loads((RESULTS / "incremental.json").read_text())
        write_result("incremental", result, markdown(result))
        return
    with workdir(args.workdir, "dg-incremental-") as work:
        measure(args, work)


def measure(args: argparse.Namespace, work: Path) -> None:
    scenario = load_scenario("disclosure-2026").scaled(args.scale)
    if not (work / "complete").exists():
        generate(scenario, work / "traffic", seed=args.seed)
        generate(scenario.benign_only(), work / "reference", seed=args.seed + 100)
        (work / "complete").touch()
    previous = RESULTS / "incremental.json"
    result: dict[str, Any] = json.loads(previous.read_text()) if args.part != "both" and previous.exists() else {}
    result.update({"scenario": "disclosure-2026", "scale": args.scale, **machine()})
    if args.part in ("hourly", "both"):
        load = os.getloadavg()[0]
        hourly = hourly_scans(args, work, split_by_hour(work / "traffic", work / "hourly"))
        result["hourly"] = hourly | {"load_average": [round(load, 1), round(os.getloadavg()[0], 1)],
                                     "hours": args.hours}
    if args.part in ("replay", "both"):
        load = os.getloadavg()[0]
        result["replay"] = replay_run(args, work) | {"load_average": [round(load, 1), round(os.getloadavg()[0], 1)]}
    write_result("incremental", result, markdown(result))


def split_by_hour(src: Path, dst: Path) -> list[Path]:
    """``src``'s exchanges as one Parquet file per UTC hour under day partitions in ``dst`` (made once); the
    hour files in time order."""
    if not (dst / "complete").exists():
        shutil.rmtree(dst, ignore_errors=True)
        (dst / "exchanges").mkdir(parents=True)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        rows = f"read_parquet('{src}/exchanges/*.parquet')"
        hour = "strftime(CAST(timestamp AS TIMESTAMPTZ), '%Y-%m-%d/%H')"
        for (h,) in con.execute(f"SELECT DISTINCT {hour} AS h FROM {rows} ORDER BY h").fetchall():
            day, hh = h.split("/")
            part = dst / "exchanges" / f"date={day}" / f"hour={hh}"
            part.mkdir(parents=True)
            con.execute(f"COPY (SELECT * FROM {rows} WHERE {hour} = '{h}') TO '{part}/part-0.parquet' (FORMAT parquet)")
        (dst / "complete").touch()
    return sorted((dst / "exchanges").glob("date=*/hour=*/part-0.parquet"))


def hourly_scans(args: argparse.Namespace, work: Path, hours: list[Path]) -> dict[str, Any]:
    """The store's first incremental scan over all but the last ``args.hours`` hours, then one scan per hour."""
    zone, db = work / "zone", work / "inc.duckdb"
    shutil.rmtree(zone, ignore_errors=True)
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    for name in ("accounts.jsonl", "events.jsonl"):
        (zone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "traffic" / name, zone / name)
    first, later = hours[: -args.hours], hours[-args.hours:]
    for path in first:
        _land(path, work / "hourly", zone)
    runs = [_scan(zone, work / "out", db, incremental=True) | {"new_exchanges": _rows(first), "hour": "initial"}]
    for path in later:
        _land(path, work / "hourly", zone)
        runs.append(_scan(zone, work / "out", db, incremental=True)
                    | {"new_exchanges": _rows([path]), "hour": "/".join(path.parts[-3:-1])})
    full_db = work / "full.duckdb"
    full_db.unlink(missing_ok=True)
    full = _scan(zone, work / "out-full", full_db, incremental=False)
    same = _same_outputs(work / "out", work / "out-full")
    with Store.open(db, read_only=True) as store:
        stored = store.count("exchanges")
        accounts = store.count("account_features")
    return {"store_exchanges": stored, "accounts": accounts, "runs": runs, "full_scan": full,
            "outputs_equal_full_scan": same}


def replay_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    traffic = work / "traffic"
    if args.replay_hours:
        traffic = _first_hours(work, args.replay_hours)
    out: dict[str, Any] = {"window_hours": 1.0, "first_hours": args.replay_hours or None}
    runs = [("replay_s", "replay", True)] + ([("window_by_window_s", "replay-old", False)] if args.compare else [])
    for key, name, incremental in runs:
        db = work / f"{name}.duckdb"
        for stale in (db, db.with_suffix(".reference.duckdb")):
            stale.unlink(missing_ok=True)
        with timed(out, key), Store.open(db) as store:
            rep = replay(traffic, work / name, store=store, window=timedelta(hours=1),
                         reference_dir=work / "reference", incremental=incremental)
    if args.compare:
        out["identical_to_window_by_window"] = pq.read_table(work / "replay" / "replay.parquet").equals(
            pq.read_table(work / "replay-old" / "replay.parquet"))
    out["windows"] = rep.windows
    out["time_to_flag"] = rep.time_to_flag
    labels = [orjson.loads(line) for line in (work / "traffic" / "labels.jsonl").read_bytes().splitlines() if line]
    campaign_of = {r["account_id"]: r["campaign_id"] for r in labels if r.get("is_attack")}
    per = campaign_detection_times(pq.read_table(work / "replay" / "replay.parquet"), campaign_of)
    out["campaigns"] = {c: {k: v[k] for k in ("first_flagged_at", "hours_to_detect", "exchanges_before_flag")}
                        for c, v in per.items()}
    before = RESULTS / "replay_detect.json"
    if before.exists():
        old = json.loads(before.read_text())["replay"]["campaigns"]
        out["same_as_before"] = all(
            old.get(c, {}).get(k) == v[k] for c, v in out["campaigns"].items()
            for k in ("first_flagged_at", "exchanges_before_flag"))
    return out


def _first_hours(work: Path, hours: float) -> Path:
    """The traffic's first ``hours`` as a traffic directory of its own."""
    dst = work / f"first-{hours:g}h"
    if not (dst / "complete").exists():
        shutil.rmtree(dst, ignore_errors=True)
        (dst / "exchanges").mkdir(parents=True)
        for name in ("accounts.jsonl", "events.jsonl", "labels.jsonl"):
            shutil.copy(work / "traffic" / name, dst / name)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        rows = f"read_parquet('{work}/traffic/exchanges/*.parquet')"
        first = f"(SELECT min(CAST(timestamp AS TIMESTAMPTZ)) FROM {rows})"
        con.execute(f"""COPY (SELECT * FROM {rows}
                              WHERE CAST(timestamp AS TIMESTAMPTZ) < {first} + to_seconds({int(hours * 3600)}))
                        TO '{dst}/exchanges/part-0.parquet' (FORMAT parquet)""")
        (dst / "complete").touch()
    return dst


def _land(path: Path, root: Path, zone: Path) -> None:
    dest = zone / path.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, dest)


def _rows(paths: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def _scan(zone: Path, out: Path, db: Path, *, incremental: bool) -> dict[str, Any]:
    """One ``distillguard -v scan`` process: wall seconds, stage seconds, peak memory of it and its workers."""
    cmd = [sys.executable, "-m", "distillguard", "-v", "scan", str(zone), "--out", str(out), "--db", str(db),
           "--window", "30d"] + (["--incremental"] if incremental else [])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakTreeRss(proc.pid) as rss:
        log, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"scan failed:\n{log[-3000:]}")
    stages: dict[str, float] = {}
    for name, seconds in _STAGE.findall(log):
        stages[name] = round(stages.get(name, 0.0) + float(seconds), 2)
    return {"seconds": round(time.perf_counter() - start, 2), "stages": stages, "peak_rss_mib": round(rss.peak)}


def _same_outputs(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    def summary(p: Path) -> dict[str, Any]:
        s = json.loads((p / "summary.json").read_text())
        return {k: v for k, v in s.items() if k not in ("ingest", "traffic_dir", "reference", "version")}

    return (pq.read_table(a / "accounts.parquet").equals(pq.read_table(b / "accounts.parquet"))
            and json.loads((a / "campaigns.json").read_text()) == json.loads((b / "campaigns.json").read_text())
            and summary(a) == summary(b))


def markdown(r: dict[str, Any]) -> str:
    md = (
        "# Incremental scans and replay\n\n"
        "`python benchmarks/incremental.py` on disclosure-2026 x" f"{r['scale']} ({r['cpus']} CPUs). **Indicative "
        "timings only**: measured on a 2-core machine shared with other long jobs (the load average at the start "
        "and end of each part is given); an idle machine is faster. Not at the 10M target scale.\n"
    )
    h = r.get("hourly")
    if h:
        rows = "\n".join(f"| {run['hour']} | {run['new_exchanges']:,} | {run['seconds']} | {_stages(run['stages'])} | "
                         f"{run['peak_rss_mib']:,} |" for run in h["runs"])
        full = h["full_scan"]
        md += (
            f"\n**Hourly scans** (`--part hourly --hours {h['hours']}`; load average {h['load_average'][0]} -> "
            f"{h['load_average'][1]}). "
            f"The traffic's hours as files in day partitions; the store's first `scan --incremental --window 30d` "
            f"reads all hours but the last {h['hours']}, then each scan adds one hour. At the end the store holds "
            f"{h['store_exchanges']:,} exchanges of {h['accounts']:,} accounts (the target: 10M over 30 days, "
            "~15k new an hour). One `distillguard -v scan` process per row; wall time includes its start "
            "(imports, loading the enrichers' models: several seconds).\n\n"
            "| hour | new exchanges | wall s | stages (s) | peak memory MiB |\n|---|---:|---:|---|---:|\n"
            + rows + "\n\n"
            f"A full scan of the same files into a fresh store: {full['seconds']} s ({_stages(full['stages'])}), "
            f"peak {full['peak_rss_mib']:,} MiB. The last incremental scan's outputs equal the full scan's: "
            f"**{h['outputs_equal_full_scan']}**.\n\n"
            "What still grows with the window rather than the new hour: linking (its evidence comes from the "
            "per-day aggregates, about one row per exchange for harvesters whose every prompt differs, and the "
            "pairs of accounts sharing a value), scoring every account, and the campaign records (their members' "
            "exchanges in the window).\n"
        )
    rep = r.get("replay")
    if rep:
        camp = "\n".join(_campaign_row(c, v) for c, v in rep["campaigns"].items())
        part = f"the traffic's first {rep['first_hours']:g} hours" if rep["first_hours"] else "all the traffic"
        md += (
            f"\n**Replay**, 1 h windows, benign reference (`--part replay --replay-hours "
            f"{rep['first_hours'] or 0:g}{' --compare' if 'window_by_window_s' in rep else ''}`; load average "
            f"{rep['load_average'][0]} -> {rep['load_average'][1]}). "
            f"Replay of {part}: {rep['windows']} windows in **{rep['replay_s']} s** (the reference's and the "
            "traffic's ingest and enrichment included)"
            + (f"; window by window from the exchanges, as before the incremental path, {rep['window_by_window_s']} s "
               f"on the same machine, with identical states in every window (replay.parquet): "
               f"**{rep['identical_to_window_by_window']}**" if "window_by_window_s" in rep else "")
            + ". Before the incremental path the whole traffic's 337 windows took 418 s on an idle machine "
            "(`replay_detect.md`).\n\n"
            "| campaign | first flagged | hours after its first exchange | exchanges sent before |\n"
            "|---|---|---:|---:|\n" + camp + "\n\n"
            + ("The same first flags and exchange counts as `replay_detect.json`: "
               f"**{rep['same_as_before']}** (that file was measured before later detection changes, #18; the "
               "comparison above, at the same commit, is the one that shows replay's figures unchanged).\n"
               if "same_as_before" in rep else "")
        )
    return md


def _campaign_row(campaign: str, v: dict[str, Any]) -> str:
    hours = "-" if v["hours_to_detect"] is None else f"{v['hours_to_detect']:.0f}"
    sent = "-" if v["exchanges_before_flag"] is None else f"{v['exchanges_before_flag']:,}"
    return f"| {campaign} | {v['first_flagged_at'] or 'never'} | {hours} | {sent} |"


def _stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v}" for k, v in stages.items())


if __name__ == "__main__":
    main()
