"""Latency the gateway adds, side by side with calling the upstream directly; and its closed-loop throughput.

    python benchmarks/gateway_latency.py [--rates 200,500,1000] [--seconds 10] [--runs 5]
                                         [--connections 8] [--closed-seconds 10] [--workers 1]

A canned local upstream (``_loadgen.py``: answers at once) and the gateway
(``distillguard gateway``: its worker and its live-signal process) run as
separate processes. Open loop: this process sends requests on a fixed schedule
at each rate to the gateway and at the same rate directly to the upstream,
interleaved, over keep-alive connections with a light HTTP/1.1 client, and
records the latency of each (time to the whole answer; time to the first body
byte for streams). Added latency is the gateway's percentile minus the direct
one. Every (mode, rate) is measured ``--runs`` times, the runs of all of them
interleaved (run 1 of every rate, then run 2, ...), and reported as the median
over runs and the worst run's p99, so one lucky run cannot stand for the figure.
Closed loop: ``--connections`` clients each send the next request as soon as
the last is answered, for ``--closed-seconds``, through the gateway (and
directly, for reference); requests per second, and whether every request sent
is in the exchange log.

CPUs: with two or more, the gateway's processes (worker(s) and live process)
get CPU 1 (with ``--workers N``, CPUs 1..N where there are that many), and the
upstream, Redis and the load generator share CPU 0, as a gateway would run
beside its traffic in production. The gateway runs with its defaults (live
signals on, in their own process at idle priority; log fsync every 0.2 s) and
limits high enough never to refuse. ``--workers N`` (N > 1) starts a
``redis-server`` for the shared limits.
Targets (#23): added p99 at most 3 ms at 500 requests/s for streams and
non-streams in the worst of 5 runs, with one worker; at least 2,000 requests/s
closed loop at 8 connections with every request logged.
Writes benchmarks/results/gateway_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
from _common import machine, write_result
from _loadgen import Target, closed_loop, open_loop, request_bytes, run

HERE = Path(__file__).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, headers: dict[str, str] | None = None, ok: int = 499) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code <= ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _pin(pid: int, cpus: set[int]) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, cpus)


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children of any of its threads, recursively); Linux /proc."""
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def gateway_cpus(workers: int) -> set[int]:
    """CPU 1, or CPUs 1..workers where the machine has them (CPU 0 is the upstream's and the load generator's)."""
    n = os.cpu_count() or 1
    return set(range(1, min(workers, n - 1) + 1)) if n >= 2 else {0}


def _redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--workers > 1 needs redis-server (apt-get install redis-server)")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def start_pair(work: Path, gateway_toml: str = "", workers: int = 1) -> tuple[list[subprocess.Popen[bytes]], int, int,
                                                                                 str]:
    """(processes, upstream port, gateway port, API key): the canned upstream on CPU 0, the gateway on its CPUs.

    The gateway is the last process of the list; with ``workers`` > 1 a ``redis-server`` comes before it.
    """
    from distillguard.gateway.keys import KeyStore

    up_port, gw_port = _port(), _port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "_loadgen.py"), "upstream", str(up_port)])]
    _pin(procs[0].pid, {0})
    secret, _ = KeyStore(work / "keys.db").add("acct-bench")
    toml = f"workers = {workers}\n" + gateway_toml
    if workers > 1:
        redis_port = _port()
        procs.append(_redis(redis_port))
        _pin(procs[-1].pid, {0})
        toml = f'redis_url = "redis://127.0.0.1:{redis_port}/0"\n' + toml
    (work / "gateway.toml").write_text(toml + "[limits]\naccount_requests_per_minute = 1e9\n"
                                       "account_tokens_per_minute = 1e12\n")
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "distillguard.cli", "gateway", "--upstream", f"http://127.0.0.1:{up_port}/v1",
         "--port", str(gw_port), "--keys", str(work / "keys.db"), "--log-dir", str(work / "log"),
         "--config", str(work / "gateway.toml"), "--log-format", "json"], stderr=subprocess.DEVNULL))
    _pin(procs[-1].pid, gateway_cpus(workers))  # before it starts its worker and live processes: they inherit it
    _pin(os.getpid(), {0})
    _wait(f"http://127.0.0.1:{up_port}/v1/models")
    _wait(f"http://127.0.0.1:{gw_port}/readyz", ok=200)  # ready: upstream reachable, live classifier fitted
    for pid in descendants(procs[-1].pid):  # and in case one started before the pin
        _pin(pid, gateway_cpus(workers))
    return procs, up_port, gw_port, secret


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):  # the gateway first: it drains and flushes its log
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def logged_records(work: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in (work / "log" / "exchanges").glob("*.jsonl"))


def _settled_records(work: Path, expected: int, timeout: float = 10.0) -> int:
    """The log's record count once it reaches ``expected``, or has not grown for a second (flushes: every 0.2 s)."""
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while True:
        n = logged_records(work)
        if n >= expected or time.monotonic() > deadline:
            return n
        still = still + 1 if n == last else 0
        if still >= 4:
            return n
        last = n
        time.sleep(0.3)


BODY = {"model": "fast", "messages": [{"role": "user", "content": "Capital of France?"}], "max_tokens": 8}


def targets(up_port: int, gw_port: int, secret: str, stream: bool) -> list[Target]:
    body = {**BODY, "stream": stream}
    return [Target(up_port, request_bytes("/v1/chat/completions", body, {}), stream),
            Target(gw_port, request_bytes("/v1/chat/completions", body, {"authorization": f"Bearer {secret}"}),
                   stream)]


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2)


def pauses(gw_port: int) -> dict[str, float]:
    """The worker's cumulative pause counts from its /metrics (``gateway.pauses``): collections by generation,
    collections and event-loop lags over 1 and 5 ms, the longest bucket bound reached."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{gw_port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("distillguard_gc_pause_seconds", "distillguard_event_loop_lag_seconds"):
            continue
        short = "gc" if "gc" in family.name else "lag"
        for sample in family.samples:
            if sample.name.endswith("_count"):
                key = f"{short}_gen{sample.labels['generation']}" if short == "gc" else "lag_n"
                out[key] = out.get(key, 0.0) + sample.value
            elif sample.name.endswith("_bucket") and sample.labels["le"] in ("0.001", "0.005"):
                key = f"{short}_under_{'1' if sample.labels['le'] == '0.001' else '5'}ms"
                out[key] = out.get(key, 0.0) + sample.value
    return out


def _pause_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    gcs = d.get("gc_gen0", 0) + d.get("gc_gen1", 0) + d.get("gc_gen2", 0)
    return {"gc_collections": int(gcs), "gc_gen2": int(d.get("gc_gen2", 0)),
            "gc_over_1ms": int(gcs - d.get("gc_under_1ms", 0)), "gc_over_5ms": int(gcs - d.get("gc_under_5ms", 0)),
            "lag_over_1ms": int(d.get("lag_n", 0) - d.get("lag_under_1ms", 0)),
            "lag_over_5ms": int(d.get("lag_n", 0) - d.get("lag_under_5ms", 0))}


def open_run(up_port: int, gw_port: int, secret: str, stream: bool, rate: float, seconds: float) -> dict[str, Any]:
    """One open-loop run: ``rate`` through the gateway and the same directly (twice that in total)."""
    pair = targets(up_port, gw_port, secret, stream)
    before = pauses(gw_port)
    run(open_loop(pair, 2 * rate, seconds))
    paused = _pause_delta(before, pauses(gw_port))
    direct, gateway = pair
    row: dict[str, Any] = {"stream": stream, "rate": rate, "requests": sum(len(t.latencies) for t in pair),
                           "sent_gateway": len(gateway.latencies) + gateway.failures}
    for name, t in (("direct", direct), ("gateway", gateway)):
        row[f"{name}_p50_ms"], row[f"{name}_p99_ms"] = (_ms(t.latencies, 50), _ms(t.latencies, 99)) \
            if t.latencies else (float("nan"), float("nan"))
    row["added_p50_ms"] = round(row["gateway_p50_ms"] - row["direct_p50_ms"], 2)
    row["added_p99_ms"] = round(row["gateway_p99_ms"] - row["direct_p99_ms"], 2)
    row["errors_direct"], row["errors_gateway"] = direct.failures, gateway.failures
    row["failure_kinds_gateway"] = gateway.reasons
    row["pauses"] = paused
    return row


def closed_run(port: int, secret: str | None, connections: int, seconds: float) -> dict[str, Any]:
    """One closed-loop run of non-stream requests against ``port`` (the gateway with ``secret``, else direct)."""
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    target = Target(port, request_bytes("/v1/chat/completions", {**BODY, "stream": False}, headers), False)
    elapsed = 0.0

    async def go() -> None:
        nonlocal elapsed
        elapsed = await closed_loop(target, connections, seconds)
        for _, writer in target.idle:  # the next run starts on fresh connections
            writer.close()

    run(go())
    ok = len(target.latencies)
    return {"connections": connections, "seconds": round(elapsed, 2), "requests": ok, "failures": target.failures,
            "failure_kinds": target.reasons, "req_per_s": round(ok / elapsed, 1),
            "p50_ms": _ms(target.latencies, 50) if ok else float("nan"),
            "p99_ms": _ms(target.latencies, 99) if ok else float("nan")}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, rate): medians over runs, and the worst run's p99."""
    out = []
    for key in sorted({(r["stream"], r["rate"]) for r in rows}):
        runs = [r for r in rows if (r["stream"], r["rate"]) == key]
        s: dict[str, Any] = {"stream": key[0], "rate": key[1], "runs": len(runs)}
        for col in ("direct_p50_ms", "direct_p99_ms", "gateway_p50_ms", "gateway_p99_ms", "added_p50_ms",
                    "added_p99_ms"):
            s[f"{col}_median"] = round(median(r[col] for r in runs), 2)
        s["added_p99_ms_worst"] = max(r["added_p99_ms"] for r in runs)
        s["gateway_p99_ms_worst"] = max(r["gateway_p99_ms"] for r in runs)
        s["errors_direct"] = sum(r["errors_direct"] for r in runs)
        s["errors_gateway"] = sum(r["errors_gateway"] for r in runs)
        s["pauses_median"] = {k: median(r["pauses"][k] for r in runs) for k in runs[0]["pauses"]}
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="200,500,1000", help="requests/s through the gateway, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one open-loop run")
    ap.add_argument("--runs", type=int, default=5, help="runs of every (mode, rate) and of the closed loop")
    ap.add_argument("--connections", type=int, default=8, help="closed loop: concurrent connections (0: skip it)")
    ap.add_argument("--closed-seconds", type=float, default=10.0, help="length of one closed-loop run")
    ap.add_argument("--workers", type=int, default=1, help="gateway worker processes (more than 1 starts Redis)")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    work = Path(tempfile.mkdtemp(prefix="dg-gwbench-"))
    procs, up_port, gw_port, secret = start_pair(work, workers=args.workers)
    sent = 0
    rows: list[dict[str, Any]] = []
    closed: list[dict[str, Any]] = []
    try:
        warm = targets(up_port, gw_port, secret, False)
        run(open_loop(warm, 200, 5))
        sent += len(warm[1].latencies) + warm[1].failures
        for i in range(args.runs):  # run i of every (mode, rate), then run i + 1: drift spreads over all of them
            for stream in (False, True):
                for rate in rates:
                    rows.append({"run": i + 1, **open_run(up_port, gw_port, secret, stream, rate, args.seconds)})
                    sent += rows[-1]["sent_gateway"]
                    print(rows[-1], flush=True)
                    time.sleep(1.0)  # let queues from the previous run empty
            if args.connections:
                before = _settled_records(work, sent)
                row = {"run": i + 1, **closed_run(gw_port, secret, args.connections, args.closed_seconds)}
                through = row["requests"] + row["failures"]
                sent += through
                row["logged"] = _settled_records(work, sent) - before
                row["direct"] = closed_run(up_port, None, args.connections, min(args.closed_seconds, 3.0))
                closed.append(row)
                print({k: v for k, v in row.items() if k != "direct"}, "direct", row["direct"]["req_per_s"],
                      flush=True)
                time.sleep(1.0)
    finally:
        stop(procs)
    logged = logged_records(work)
    shutil.rmtree(work, ignore_errors=True)
    summary = summarize(rows)
    closed_summary: dict[str, Any] = {}
    if closed:
        closed_summary = {"connections": args.connections, "runs": len(closed),
                          "req_per_s_median": round(median(r["req_per_s"] for r in closed), 1),
                          "req_per_s_min": min(r["req_per_s"] for r in closed),
                          "p50_ms_median": round(median(r["p50_ms"] for r in closed), 2),
                          "p99_ms_median": round(median(r["p99_ms"] for r in closed), 2),
                          "p99_ms_worst": max(r["p99_ms"] for r in closed),
                          "requests": sum(r["requests"] + r["failures"] for r in closed),
                          "logged": sum(r["logged"] for r in closed),
                          "failures": sum(r["failures"] for r in closed),
                          "direct_req_per_s_median": round(median(r["direct"]["req_per_s"] for r in closed), 1)}
    command = (f"python benchmarks/gateway_latency.py --rates {args.rates} --seconds {args.seconds:g} "
               f"--runs {args.runs} --connections {args.connections} --closed-seconds {args.closed_seconds:g}"
               + (f" --workers {args.workers}" if args.workers > 1 else ""))
    result = {**machine(), "command": command, "workers": args.workers, "runs": args.runs,
              "seconds_per_run": args.seconds, "summary": summary, "closed_loop": closed_summary,
              "rows": rows, "closed_rows": closed, "gateway_requests": sent, "gateway_log_records": logged}
    cpus = result["cpus"]
    where = (f"the gateway's processes pinned to CPU{'s' if len(gateway_cpus(args.workers)) > 1 else ''} "
             f"{','.join(map(str, sorted(gateway_cpus(args.workers))))}, the upstream and the load generator to CPU 0"
             if (cpus or 1) >= 2 else "one CPU for everything")
    md = ["# Gateway added latency", "",
          f"`{command}` on {cpus} CPUs, {args.workers} worker{'s' if args.workers > 1 else ''}: the same fixed rate "
          "sent on a fixed schedule directly to a canned local upstream and through the gateway in front of it, "
          f"interleaved, over keep-alive connections (separate processes; {where}). Time to the whole answer; "
          f"streams: time to the first byte. Each row is {args.runs} run{'s' if args.runs > 1 else ''} of "
          f"{args.seconds:g} s, interleaved with "
          "the other rows' runs: medians over the runs, and the worst run's p99.",
          "", "| mode | rate through the gateway (req/s) | direct p50 / p99 ms | gateway p50 / p99 ms "
          "| added p50 / p99 ms (median) | added p99 ms, worst run | failed (direct / gateway) |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary:
        md.append(f"| {'stream' if r['stream'] else 'non-stream'} | {r['rate']:g} | {r['direct_p50_ms_median']} / "
                  f"{r['direct_p99_ms_median']} | {r['gateway_p50_ms_median']} / {r['gateway_p99_ms_median']} | "
                  f"{r['added_p50_ms_median']} / {r['added_p99_ms_median']} | **{r['added_p99_ms_worst']}** | "
                  f"{r['errors_direct']} / {r['errors_gateway']} |")
    if closed_summary:
        c = closed_summary
        md += ["", f"Closed loop, {c['connections']} connections, {c['runs']} run{'s' if c['runs'] > 1 else ''} of "
               f"{args.closed_seconds:g} s "
               "(non-stream; each client sends its next request when the last is answered):", "",
               "| through | req/s median (lowest run) | p50 / p99 ms (median) | p99 ms, worst run | requests | "
               "in the log | failed |", "|---|---:|---:|---:|---:|---:|---:|",
               f"| gateway | **{c['req_per_s_median']:,}** ({c['req_per_s_min']:,}) | {c['p50_ms_median']} / "
               f"{c['p99_ms_median']} | {c['p99_ms_worst']} | {c['requests']:,} | {c['logged']:,} | {c['failures']} |",
               f"| direct (reference, {min(args.closed_seconds, 3.0):g} s runs) | {c['direct_req_per_s_median']:,} "
               "| | | | | |"]
    md += ["", "Where the worker's time went during each open-loop run (its /metrics: `gateway/pauses.py`), "
           "medians over the runs: garbage collections (all generations, the full ones, and those longer than "
           "1 and 5 ms), and how often a timer due every 5 ms ran more than 1 and 5 ms late (the event loop busy "
           "elsewhere: parsing, serializing, a collection).", "",
           "| mode | rate | collections | full (gen 2) | > 1 ms | > 5 ms | loop late > 1 ms | > 5 ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary:
        p = r["pauses_median"]
        md.append(f"| {'stream' if r['stream'] else 'non-stream'} | {r['rate']:g} | {p['gc_collections']:g} | "
                  f"{p['gc_gen2']:g} | {p['gc_over_1ms']:g} | {p['gc_over_5ms']:g} | {p['lag_over_1ms']:g} | "
                  f"{p['lag_over_5ms']:g} |")
    md += ["", f"Requests sent through the gateway: {sent:,}; exchange records in its log after shutdown: "
           f"{logged:,}.", "Targets (#23, one worker): added p99 at most 3 ms at 500 requests/s for streams and "
           "non-streams in the worst of 5 runs; at least 2,000 requests/s closed loop at 8 connections with every "
           "request logged."]
    write_result("gateway_latency", result, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
