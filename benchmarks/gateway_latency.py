"""Latency the gateway adds, side by side with calling the upstream directly.

    python benchmarks/gateway_latency.py [--rates 200,500,1000] [--seconds 10]

A fast local upstream (a canned chat completion, streamed as three events when
asked) and the gateway run as separate processes (uvicorn); this process sends
requests at each fixed rate to the gateway and at the same rate directly to
the upstream, interleaved, for ``--seconds``, and records the latency of each (time to the whole answer;
time to the first byte for streams). Added latency is the gateway's percentile
minus the direct one. On this 2-core machine the load generator, the upstream
and the gateway share two CPUs, which the figures include.
Target (gateway issue): p99 added latency under 3 ms at 500 requests/s.
Writes benchmarks/results/gateway_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import machine, write_result

ANSWER = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "fast",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}


def upstream_app() -> Any:
    """The fast upstream (uvicorn factory)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        if not body.get("stream"):
            return JSONResponse(ANSWER)

        async def events() -> Any:
            for delta in ({"role": "assistant", "content": ""}, {"content": "Paris."}, {}):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "fast",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}]}
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            yield b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":' \
                  + json.dumps(ANSWER["usage"]).encode() + b"}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fast", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _one(client: httpx.AsyncClient, url: str, headers: dict[str, str], stream: bool) -> float:
    body = {"model": "fast", "messages": [{"role": "user", "content": "Capital of France?"}], "max_tokens": 8,
            "stream": stream}
    start = time.perf_counter()
    if stream:
        async with client.stream("POST", url, json=body, headers=headers) as r:
            async for _ in r.aiter_raw():
                return time.perf_counter() - start  # time to first byte
        return time.perf_counter() - start
    r = await client.post(url, json=body, headers=headers)
    r.raise_for_status()
    return time.perf_counter() - start


async def _load(targets: dict[str, tuple[str, dict[str, str]]], rate: float, seconds: float,
                stream: bool, errors: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Send at ``rate`` requests/s in total, alternating targets; latencies per target (failures counted)."""
    out: dict[str, list[float]] = {name: [] for name in targets}
    errors = errors if errors is not None else {}
    names = list(targets)
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            name = names[i % len(names)]
            url, headers = targets[name]

            async def run(name: str = name, url: str = url, headers: dict[str, str] = headers) -> None:
                try:
                    out[name].append(await _one(client, url, headers, stream))
                except httpx.HTTPError:  # an overloaded machine: counted, not fatal
                    errors[name] = errors.get(name, 0) + 1

            tasks.append(asyncio.ensure_future(run()))
        await asyncio.gather(*tasks)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="200,500,1000")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dg-gwbench-"))
    up_port, gw_port = _port(), _port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "gateway_latency:upstream_app",
                               "--port", str(up_port), "--log-level", "warning"], env=env)]
    try:
        from distillguard.gateway.keys import KeyStore

        secret, _ = KeyStore(work / "keys.db").add("acct-bench")
        # Limits high enough never to refuse: the limiter still runs on every request.
        (work / "gateway.toml").write_text("[limits]\naccount_requests_per_minute = 1e9\n"
                                           "account_tokens_per_minute = 1e12\n")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distillguard.cli", "gateway", "--upstream", f"http://127.0.0.1:{up_port}/v1",
             "--port", str(gw_port), "--keys", str(work / "keys.db"), "--log-dir", str(work / "log"),
             "--config", str(work / "gateway.toml")], env=env))
        auth = {"authorization": f"Bearer {secret}"}
        _wait(f"http://127.0.0.1:{up_port}/v1/models")
        _wait(f"http://127.0.0.1:{gw_port}/healthz")
        targets = {"direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", {}),
                   "gateway": (f"http://127.0.0.1:{gw_port}/v1/chat/completions", auth)}
        asyncio.run(_load(targets, 50, 2, False))  # warm-up
        rows = []
        for stream in (False, True):
            for rate in [float(r) for r in args.rates.split(",")]:
                # ``rate`` through the gateway and the same directly: twice that in total.
                errors: dict[str, int] = {}
                lat = asyncio.run(_load(targets, 2 * rate, args.seconds, stream, errors))
                p = {name: np.percentile(np.array(v) * 1000, [50, 99]) for name, v in lat.items()}
                rows.append({"stream": stream, "rate": rate, "requests": sum(len(v) for v in lat.values()),
                             "direct_p50_ms": round(float(p["direct"][0]), 2),
                             "direct_p99_ms": round(float(p["direct"][1]), 2),
                             "gateway_p50_ms": round(float(p["gateway"][0]), 2),
                             "gateway_p99_ms": round(float(p["gateway"][1]), 2),
                             "added_p50_ms": round(float(p["gateway"][0] - p["direct"][0]), 2),
                             "added_p99_ms": round(float(p["gateway"][1] - p["direct"][1]), 2),
                             "errors_direct": errors.get("direct", 0), "errors_gateway": errors.get("gateway", 0)})
                print(rows[-1], flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    logged = sum(len(f.read_text().splitlines()) for f in (work / "log" / "exchanges").glob("*.jsonl"))
    sent = sum(r["requests"] for r in rows) // 2 + 50  # half of each run, plus the warm-up
    result = {**machine(), "seconds_per_rate": args.seconds, "rows": rows, "gateway_requests": sent,
              "gateway_log_records": logged}
    md = ["# Gateway added latency", "",
          f"`python benchmarks/gateway_latency.py --rates {args.rates} --seconds {args.seconds:g}` on "
          f"{result['cpus']} CPUs: the same fixed rate sent directly to a fast local upstream and through the "
          "gateway in front of it, interleaved (separate processes; the load generator shares the two CPUs). "
          "Streams: time to first byte.",
          "", "| mode | rate through the gateway (req/s) | direct p50 / p99 ms | gateway p50 / p99 ms "
          "| added p50 / p99 ms | failed (direct / gateway) |",
          "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {'stream' if r['stream'] else 'non-stream'} | {r['rate']:g} | {r['direct_p50_ms']} / "
                  f"{r['direct_p99_ms']} | {r['gateway_p50_ms']} / {r['gateway_p99_ms']} | {r['added_p50_ms']} / "
                  f"{r['added_p99_ms']} | {r['errors_direct']} / {r['errors_gateway']} |")
    md += ["", f"Requests sent through the gateway: {sent:,}; exchange records in its log after shutdown: "
           f"{logged:,}.", "Target: p99 added latency under 3 ms at 500 requests/s."]
    write_result("gateway_latency", result, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
