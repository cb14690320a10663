"""The gateway as a real process (``distillguard gateway``): SIGKILL under load loses nothing flushed, SIGTERM drains.

The upstream is the lab model server on loopback; the gateway runs in its own
process from the CLI with a TOML config, so the signals hit exactly what a
user runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distillguard.gateway.keys import KeyStore
from distillguard.gateway.segments import recover_torn_segments
from distillguard.lab.loopback import free_port

FLUSH = 0.05


@pytest.fixture
def start_gateway(model_server: str, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(**settings: Any) -> tuple[subprocess.Popen[bytes], str, str]:
        keys = KeyStore(tmp_path / "keys.db")
        secret = keys.add(f"acct-{len(procs)}")[0]
        port = free_port()
        config = tmp_path / "gateway.toml"
        lines = [f'upstream = "{model_server}"', f'port = {port}', f'log_dir = "{tmp_path / "log"}"',
                 f'keys = "{tmp_path / "keys.db"}"', f"flush_interval = {FLUSH}", 'log_format = "json"']
        lines += [f"{k} = {_toml(v)}" for k, v in settings.items()]
        lines += ["[limits]", "account_requests_per_minute = 1000000", "[live]", "enabled = false"]
        config.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "gateway", "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start: {proc.communicate()[1].decode()[-2000:]}")
            time.sleep(0.1)
        return proc, url, secret

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def _toml(value: Any) -> str:
    """A TOML value for the few shapes these tests set (lists of inline tables, scalars)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _records(log_dir: Path) -> list[dict[str, Any]]:
    """Every line of every segment, each of which must be a whole JSON record."""
    rows = []
    for seg in sorted((log_dir / "exchanges").glob("*.jsonl")):
        text = seg.read_text()
        assert text == "" or text.endswith("\n"), f"{seg.name} ends in a partial line"
        rows += [json.loads(line) for line in text.splitlines()]
    return rows


BODY = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def test_sigkill_under_load_loses_no_exchange_acknowledged_before_the_last_flush(
        start_gateway: Any, tmp_path: Path) -> None:
    proc, url, secret = start_gateway()
    acked: list[tuple[float, float, str]] = []  # (sent, acknowledged, exchange id)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {secret}"}, timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(f"{url}/v1/chat/completions", json=BODY)
                except httpx.HTTPError:
                    return  # the gateway is gone
                if r.status_code == 200:
                    acked.append((sent, time.monotonic(), r.headers["x-request-id"]))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    # Kill once the load is going: more than 20 exchanges acknowledged over a second ago, so that both checks
    # below have something to check. A fixed two seconds saw 9 on a loaded machine, where the in-process model
    # server answers slowly.
    deadline = time.monotonic() + 60
    while sum(ack < time.monotonic() - 1.0 for _, ack, _ in acked[:]) <= 20:
        assert time.monotonic() < deadline and any(t.is_alive() for t in threads), "the load did not get going"
        time.sleep(0.05)
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(15)
    proc.wait(10)
    recover_torn_segments(tmp_path / "log" / "exchanges")  # as the restarted gateway does: a kill may cut a write
    logged = {r["exchange_id"] for r in _records(tmp_path / "log")}
    # The log is a prefix of what was acknowledged: when an exchange sent after A was acknowledged is on disk,
    # a flush after A's acknowledgement happened, so A must be on disk too.
    latest_on_disk = max(sent for sent, _, rid in acked if rid in logged)
    lost = [rid for _, ack, rid in acked if ack < latest_on_disk and rid not in logged]
    assert lost == []
    # And flushing keeps up: everything acknowledged a second before the kill is on disk.
    assert [rid for _, ack, rid in acked if ack < killed_at - 1.0 and rid not in logged] == []


@pytest.fixture(scope="module")
def slow_tokens() -> list[dict[str, Any]]:
    """A logits processor that makes the in-process model server take 20 ms a token (streams stay in flight)."""
    from transformers import LogitsProcessor

    from distillguard.lab.processors import register

    class Slow(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            time.sleep(0.02)
            return scores

    register("gateway_test_slow")(Slow)
    return [{"name": "gateway_test_slow"}]


def test_sigterm_drains_in_flight_streams_and_flushes_the_log(
        start_gateway: Any, slow_tokens: list[dict[str, Any]], tmp_path: Path) -> None:
    proc, url, secret = start_gateway(logits_processors=slow_tokens)
    results: list[str] = []
    finished: list[float] = []
    started = threading.Barrier(4)

    def stream() -> None:
        body = {**BODY, "max_tokens": 60, "stream": True, "temperature": 1.0, "seed": 1}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60,
                          headers={"authorization": f"Bearer {secret}"}) as r:
            chunks = r.iter_text()
            first = next(chunks)
            started.wait(10)
            results.append(first + "".join(chunks))
            finished.append(time.monotonic())

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait(30)  # every stream has its first bytes: all three are in flight
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    for t in threads:
        t.join(60)
    # uvicorn drains, runs the lifespan's shutdown, then re-raises the SIGTERM it caught (exit -15).
    assert proc.wait(60) in (0, -signal.SIGTERM)
    assert len(results) == 3 and all(r.rstrip().endswith("data: [DONE]") for r in results)
    assert min(finished) > signalled  # they really were in flight when the signal came
    records = _records(tmp_path / "log")
    assert len(records) == 3 and not any(r["response"].get("interrupted") for r in records)
    logs = [json.loads(line) for line in proc.communicate()[1].decode().splitlines() if line.startswith("{")]
    assert any(line["message"] == "gateway stopped" for line in logs)  # structured (JSON) lifecycle logs
