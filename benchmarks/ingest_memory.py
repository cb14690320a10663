"""Ingest throughput and memory on one large JSONL file (default 10 million lines).

    python benchmarks/ingest_memory.py [--lines 10000000] [--workdir DIR]

The foundation issue asks that a 10-million-line file ingests without being held
in memory. The file here is written by this script: compact but complete exchanges
(varied accounts, prompts and usage), with 0.1% malformed lines that must land in
quarantine. Writes benchmarks/results/ingest_memory.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
from _common import machine, peak_rss_mib, timed, workdir, write_result

from distillguard.ingest import ingest_traffic_dir
from distillguard.store import Store


def write_file(path: Path, lines: int) -> int:
    bad = 0
    with open(path, "wb") as fh:
        for i in range(lines):
            if i % 1000 == 999:
                fh.write(b'{"exchange_id": "broken", "timestamp": \n')
                bad += 1
                continue
            row = {"exchange_id": f"ex-{i}", "timestamp": f"2026-02-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                   "account_id": f"acct-{i % 50_000}", "client": {"ip": f"10.0.{i % 256}.{i % 200}"},
                   "request": {"model": "frontier-2", "messages": [
                       {"role": "user", "content": f"Solve step by step: what is {i} times {i % 97}?"}]},
                   "response": {"status": 200, "content": f"The answer is {i * (i % 97)}.",
                                "usage": {"input_tokens": 14, "output_tokens": 9}}}
            fh.write(orjson.dumps(row) + b"\n")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with workdir(args.workdir, "dg-ingest-") as work:
        measure(args, work)


def measure(args: argparse.Namespace, work: Path) -> None:
    (work / "traffic").mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"lines": args.lines, **machine()}
    with timed(result, "write_s"):
        bad = write_file(work / "traffic" / "exchanges.jsonl", args.lines)
    size = (work / "traffic" / "exchanges.jsonl").stat().st_size
    with timed(result, "ingest_s"), Store.open(work / "s.duckdb") as store:
        report = ingest_traffic_dir(work / "traffic", store)
    result.update(file_bytes=size, quarantined=report.quarantined, expected_bad=bad,
                  added=report.exchanges_added, peak_rss_mib=peak_rss_mib(),
                  lines_per_second=round(args.lines / float(result["ingest_s"])))  # type: ignore[arg-type]
    rss = result["peak_rss_mib"]["self"]  # type: ignore[index]
    md = (
        "# Ingest of one large JSONL file\n\n"
        f"`python benchmarks/ingest_memory.py --lines {args.lines}` on {result['cpus']} CPUs\n\n"
        "| lines | file size | ingest s | lines/s | quarantined (expected) | peak RSS |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {args.lines:,} | {size / 2**30:.2f} GiB | {result['ingest_s']} | {result['lines_per_second']:,} "
        f"| {report.quarantined:,} ({bad:,}) | {rss:.0f} MiB |\n"
    )
    write_result("ingest_memory", result, md)


if __name__ == "__main__":
    main()
