"""``distillguard gateway --workers 2`` as a real process with a real Redis: one budget, one live view, one log.

The gateway runs from the CLI (a supervisor, two worker processes accepting on
one port, and the live-signal process); the upstream is a small canned server
on loopback. Which worker served an exchange is read from the log: each worker
writes its own segments, named with its process id. The kernel hands each new
connection to one of the workers, so every request here opens a connection of
its own and the tests check that their requests did reach both workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from distillguard.gateway.keys import KeyStore
from distillguard.lab.loopback import free_port, serving

BUDGET = 8  # requests an account may make: a bucket of 8 refilled at one a minute (the tests take seconds)
HARVEST = "Solve {} + {}. Explain your reasoning step by step."


def _upstream_app() -> Starlette:
    async def complete(request: Request) -> Response:
        await request.body()
        return JSONResponse({"id": "x", "object": "chat.completion", "model": "m",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "four"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

    return Starlette(routes=[Route("/v1/chat/completions", complete, methods=["POST"]),
                             Route("/v1/models", models)])


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    url: str
    log_dir: Path
    keys: KeyStore
    tmp: Path
    answered: dict[str, int] = field(default_factory=dict)  # x-request-id → status, every response received

    def secret(self, account: str) -> str:
        return self.keys.add(account)[0]

    def post(self, secret: str, prompt: str = "hi") -> httpx.Response:
        """One request on a connection of its own (so the kernel picks a worker for it)."""
        body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
        r = httpx.post(f"{self.url}/v1/chat/completions", json=body, timeout=30,
                       headers={"authorization": f"Bearer {secret}", "connection": "close"})
        self.answered[r.headers["x-request-id"]] = r.status_code
        return r

    def records(self, account: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        """(pid of the worker that wrote it, record) for every logged exchange, in log order per worker."""
        rows = []
        for seg in sorted((self.log_dir / "exchanges").glob("*.jsonl")):
            pid = int(seg.name.split("-")[2])
            text = seg.read_text()
            rows += [(pid, json.loads(line)) for line in text[:text.rfind("\n") + 1].splitlines()]
        return [(pid, r) for pid, r in rows if account is None or r["account_id"] == account]

    def logged(self, ids: list[str], timeout: float = 10.0) -> dict[str, tuple[int, dict[str, Any]]]:
        """The records of ``ids`` (waiting for the workers' next flushes)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {r["exchange_id"]: (pid, r) for pid, r in self.records() if r["exchange_id"] in ids}
            if len(found) == len(ids) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def children(self) -> list[int]:
        """The gateway's child processes (of any of its threads: the live process is restarted from one)."""
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def live_pid(self) -> int | None:
        """The child process listening on the live service's Unix socket."""
        with open("/proc/net/unix") as f:
            inodes = {line.split()[6] for line in f if line.rstrip().endswith("/live.sock")
                      and line.split()[3] == "00010000"}  # a listening socket
        for pid in self.children():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
                links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
            except OSError:
                continue
            if any(f"socket:[{inode}]" in links for inode in inodes):
                return pid
        return None


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to find the gateway's processes")
    work = tmp_path_factory.mktemp("workers")
    keys = KeyStore(work / "keys.db")
    with serving(_upstream_app()) as upstream:
        port = free_port()
        config = work / "gateway.toml"
        config.write_text("\n".join([
            f'upstream = "{upstream}/v1"', f"port = {port}", f'log_dir = "{work / "log"}"',
            f'keys = "{work / "keys.db"}"', f'redis_url = "{redis_url}"', "workers = 2", "flush_interval = 0.05",
            "[limits]", "account_requests_per_minute = 1", f"burst_seconds = {BUDGET * 60}",
            "[live]", "min_requests = 6", "elicitation_share = 0.5", "template_share = 0.5",
            'priority = "normal"']) + "\n")  # not "idle": on a busy test machine it could wait long for a CPU
        tmp = tmp_path_factory.mktemp("tmp")  # where the live process's socket directory goes
        proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "gateway", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "TMPDIR": str(tmp)})
        stderr: list[bytes] = []

        def read() -> None:
            for line in proc.stderr or []:
                stderr.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        running = Workers(proc, f"http://127.0.0.1:{port}", work / "log", keys, tmp)
        deadline = time.monotonic() + 90
        ready = 0
        while ready < 10:  # both workers have started, and ten fresh connections in a row found one ready
            try:           # (ready: the live process answered it, its classifier fitted)
                ok = (sum(b"Application startup complete" in line for line in stderr) >= 2 and httpx.get(
                    f"{running.url}/readyz", headers={"connection": "close"}, timeout=1).status_code == 200)
                ready = ready + 1 if ok else 0
            except httpx.HTTPError:
                ready = 0
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the gateway did not start: {b''.join(stderr).decode()[-3000:]}")
            time.sleep(0.05 if ready else 0.1)
        try:
            yield running
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            reader.join(5)


def _spread(rows: list[tuple[int, dict[str, Any]]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for pid, _ in rows:
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def test_one_budget_is_enforced_exactly_across_workers(workers: Workers) -> None:
    spread_seen = False
    for n in range(3):  # until one account's requests reached both workers (the kernel picks; nearly always)
        account = f"acct-budget-{n}"
        secret = workers.secret(account)
        with ThreadPoolExecutor(4) as pool:
            statuses = [r.status_code for r in pool.map(workers.post, [secret] * 2 * BUDGET)]
        assert statuses.count(200) == BUDGET and statuses.count(429) == BUDGET, statuses
        rows = workers.logged([i for i, _ in workers.answered.items()])
        mine = [(pid, r) for pid, r in rows.values() if r["account_id"] == account]
        assert len(mine) == 2 * BUDGET  # every answer, served or refused, is one record
        served = _spread([(pid, r) for pid, r in mine if r["response"]["status"] == 200])
        assert sum(served.values()) == BUDGET
        if len(_spread(mine)) == 2:
            spread_seen = True
            break
    assert spread_seen, "every request of three accounts went to one worker"


def test_an_account_spread_over_workers_is_seen_whole_by_the_live_signals(workers: Workers) -> None:
    for n in range(3):
        account = f"acct-harvest-{n}"
        secret = workers.secret(account)
        first = [workers.post(secret, HARVEST.format(i, i + 1)).headers["x-request-id"] for i in range(6)]
        rows = workers.logged(first)
        counts = _spread(list(rows.values()))
        if len(counts) == 2:
            break
    # Neither worker saw the 6 requests the live threshold needs: only the shared window did.
    assert len(counts) == 2 and max(counts.values()) < 6, counts
    assert all(r["gateway"]["action"] == "allow" for _, r in rows.values())
    monitored: set[int] = set()
    deadline = time.monotonic() + 30
    while monitored != set(counts) and time.monotonic() < deadline:  # the flag reaches every worker
        rid = workers.post(secret, HARVEST.format(7, 8)).headers["x-request-id"]
        pid, record = workers.logged([rid])[rid]
        if record["gateway"]["action"] == "monitor":
            assert record["gateway"]["reason"].startswith("live: ")
            monitored.add(pid)
    assert monitored == set(counts)
    # An account of its own is not flagged by the other's requests.
    other = workers.post(workers.secret(f"acct-quiet-{n}"), "hello there")
    assert workers.logged([other.headers["x-request-id"]])[other.headers["x-request-id"]][1]["gateway"][
        "action"] == "allow"


def test_the_gateway_serves_on_when_the_live_process_dies_and_loses_no_exchange(workers: Workers) -> None:
    live = workers.live_pid()
    assert live is not None
    os.kill(live, signal.SIGKILL)
    secret = workers.secret("acct-after")
    statuses = [workers.post(secret, HARVEST.format(i, i)).status_code for i in range(BUDGET)]
    assert statuses == [200] * BUDGET
    deadline = time.monotonic() + 30
    while (restarted := workers.live_pid()) in (None, live) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert restarted not in (None, live), "the live process was not started again"
    assert httpx.get(f"{workers.url}/metrics", timeout=5).status_code == 200
    # SIGTERM: the workers drain and flush; every answer any test received is in the log, once.
    assert [p.name for p in workers.tmp.iterdir()] != []
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(60) == 0
    assert list(workers.tmp.iterdir()) == []  # the live socket's directory is gone
    logged = [r["exchange_id"] for _, r in workers.records()]
    assert len(logged) == len(set(logged))
    assert set(workers.answered) <= set(logged)
    assert sorted(r["response"]["status"] for _, r in workers.records() if r["exchange_id"] in workers.answered) \
        == sorted(workers.answered.values())


def test_several_workers_need_shared_limits(tmp_path: Path) -> None:
    from distillguard.errors import ConfigError
    from distillguard.gateway.config import load_gateway_settings

    with pytest.raises(ConfigError, match="workers = 2 needs redis_url"):
        load_gateway_settings(None, upstream="http://127.0.0.1:1/v1", workers=2)
    assert load_gateway_settings(None, upstream="http://127.0.0.1:1/v1", workers=2,
                                 redis_url="redis://127.0.0.1:1/0").workers == 2


def test_a_bad_setting_is_one_error_before_any_worker_starts(tmp_path: Path) -> None:
    from distillguard.errors import ConfigError
    from distillguard.gateway.config import load_gateway_settings
    from distillguard.gateway.server import serve

    settings = load_gateway_settings(None, upstream="http://127.0.0.1:1/v1", workers=2, log_dir=tmp_path / "log",
                                     keys=tmp_path / "keys.db", redis_url="redis://127.0.0.1:1/0",
                                     policy=tmp_path / "missing.json")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="policy file not found"):
        serve(settings)
    assert time.monotonic() - started < 5


def test_one_worker_with_the_live_process_cleans_up_on_sigterm(tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    secret = keys.add("acct-1")[0]
    # The gateway's TMPDIR, short: under a longer one (tmp_path is, once pytest numbers its folders past 99) the
    # live socket's directory goes to /tmp instead (a socket path has room for 107 bytes), and this test failed.
    tmp = Path(tempfile.mkdtemp(prefix="dg-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    port = free_port()
    with serving(_upstream_app()) as upstream:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distillguard.cli", "gateway", "--upstream", f"{upstream}/v1", "--port", str(port),
             "--keys", str(tmp_path / "keys.db"), "--log-dir", str(tmp_path / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp)})
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not get ready"
                time.sleep(0.1)
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                           json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                           headers={"authorization": f"Bearer {secret}"})
            assert r.status_code == 200 and len(list(tmp.iterdir())) == 1  # the live socket's directory
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == -signal.SIGTERM  # still ends as SIGTERM says, after cleaning up
        finally:
            if proc.poll() is None:
                proc.kill()
    assert list(tmp.iterdir()) == []
    (seg,) = (tmp_path / "log" / "exchanges").glob("*.jsonl")
    assert json.loads(seg.read_text())["exchange_id"] == r.headers["x-request-id"]
