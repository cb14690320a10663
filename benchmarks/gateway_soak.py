"""Soak: the gateway under steady load for minutes: flat memory, and every request sent is in its log.

    python benchmarks/gateway_soak.py [--rate 200] [--seconds 600]

The canned upstream and the gateway as in ``gateway_latency.py`` (separate
processes, pinned); half the requests stream. The gateway's resident memory is
sampled every 10 s; after the run it is stopped with SIGTERM (drain, flush) and
the exchange records in its log are counted against the requests sent.
Target (gateway issue): a 10-minute soak with flat memory and zero lost log records.
Writes benchmarks/results/gateway_soak.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import machine, write_result
from _loadgen import Target, open_loop, request_bytes, run
from gateway_latency import BODY, logged_records, start_pair, stop


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=600.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dg-gwsoak-"))
    procs, _, gw_port, secret = start_pair(work)
    auth = {"authorization": f"Bearer {secret}"}
    load = [Target(gw_port, request_bytes("/v1/chat/completions", {**BODY, "stream": s}, auth), s)
            for s in (False, True)]
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not done.is_set():
            samples.append((round(time.monotonic() - start, 1), round(_rss_mib(procs[1].pid), 1)))
            done.wait(10)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run(open_loop(load, args.rate, args.seconds))
    finally:
        done.set()
        sampler.join()
        stop(procs)
    sent = sum(len(t.latencies) + t.failures for t in load)
    logged = logged_records(work)
    lat = np.array([x for t in load for x in t.latencies]) * 1000
    rss = [m for _, m in samples]
    settled = [m for t, m in samples if t >= 60] or rss  # after the first minute's warm-up
    result = {**machine(), "rate": args.rate, "seconds": args.seconds, "sent": sent, "logged": logged,
              "failures": sum(t.failures for t in load), "p50_ms": round(float(np.percentile(lat, 50)), 2),
              "p99_ms": round(float(np.percentile(lat, 99)), 2), "rss_samples_mib": samples,
              "rss_first_mib": rss[0], "rss_after_1min_mib": settled[0], "rss_max_mib": max(rss),
              "rss_last_mib": rss[-1]}
    md = ["# Gateway soak", "",
          f"`python benchmarks/gateway_soak.py --rate {args.rate:g} --seconds {args.seconds:g}` on "
          f"{result['cpus']} CPUs: {args.rate:g} requests/s through the gateway for {args.seconds / 60:.0f} min "
          "(half streamed) to a canned upstream.", "",
          f"- requests sent {sent:,}; exchange records in the log after shutdown **{logged:,}** "
          f"({sent - logged:,} lost); failed requests {result['failures']:,}",
          f"- gateway resident memory: {rss[0]:.0f} MiB at start, {settled[0]:.0f} MiB after the first minute, "
          f"{max(rss):.0f} MiB at most, {rss[-1]:.0f} MiB at the end",
          f"- latency through the gateway p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"]
    write_result("gateway_soak", result, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
