"""Fault tests: a full disk (a real size-limited tmpfs, and ENOSPC/EIO injected at the writer's OS boundary),
upstream resets and hangs mid-stream, Redis down. Invariants: no acknowledged record lost, no corrupted line,
no 5xx without a log record, the right outcome in each record."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distillguard.gateway.segments import OsFileOps, SegmentLog
from distillguard.lab.loopback import free_port

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 4}


class FaultyOps(OsFileOps):
    """Real file calls with a disk that can fill up (short write, then ENOSPC) or fail (EIO)."""

    def __init__(self) -> None:
        self.free: int | None = None  # bytes the disk still takes (None: unlimited)
        self.eio = False  # every write and fsync fails with EIO
        self.truncate_fails = False
        self.faults = 0
        self.writes = 0  # write calls that reached this disk

    def write(self, fd: int, data: memoryview) -> int:
        self.writes += 1
        if self.eio:
            self.faults += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if self.free is not None:
            if self.free == 0:
                self.faults += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = data[: self.free]
            self.free -= len(data)
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.eio:
            self.faults += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        if self.truncate_fails:
            self.faults += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        before = os.fstat(fd).st_size
        super().ftruncate(fd, size)
        if self.free is not None:
            self.free += max(0, before - size)

    def free_bytes(self, path: Path) -> int:
        return super().free_bytes(path) if self.free is None else self.free


def _lines(log_dir: Path) -> list[dict[str, Any]]:
    """Every line of every segment, each of which must be a whole JSON record."""
    rows = []
    for seg in sorted((log_dir / "exchanges").glob("*.jsonl")):
        data = seg.read_bytes()
        assert not data or data.endswith(b"\n"), f"{seg} ends in a partial line"
        rows += [json.loads(line) for line in data.splitlines()]
    return rows


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_writer_survives_enospc_and_eio_and_loses_nothing(tmp_path: Path, tally: dict[str, int]) -> None:
    ops = FaultyOps()
    log = SegmentLog(tmp_path, flush_interval=0.005, max_segment_bytes=4096, stall_seconds=60, ops=ops)
    n, faults_expected = 0, 0
    for round_ in range(12):
        if round_ % 3 == 0:
            ops.free = 700 + 37 * round_  # the disk fills mid-batch: a short write, then ENOSPC
        elif round_ % 3 == 1:
            ops.eio, ops.truncate_fails = True, round_ % 2 == 1  # EIO; the cut back fails too, sometimes
        for _ in range(25):
            n += 1
            log.append({"exchange_id": f"e{n}", "pad": "x" * (n % 97)})
        if round_ % 3 != 2:
            _wait(lambda: log.error is not None)
            assert not log.healthy
            faults_expected += 1
        ops.free, ops.eio, ops.truncate_fails = None, False, False  # space freed, the disk back
        _wait(lambda: log.pending == 0 and log.error is None)
        assert log.healthy
    log.close()
    rows = _lines(tmp_path)
    assert [r["exchange_id"] for r in rows] == [f"e{i}" for i in range(1, n + 1)]  # all, once, in order
    assert log.write_errors >= faults_expected and ops.faults >= faults_expected
    tally.update(records=n, faults_injected=ops.faults, failed_flushes=log.write_errors, records_lost=0)


def test_a_full_disk_is_not_written_again_until_it_has_room(tmp_path: Path) -> None:
    ops = FaultyOps()
    log = SegmentLog(tmp_path, flush_interval=0.005, stall_seconds=60, ops=ops)
    log.append({"exchange_id": "e0"})
    _wait(lambda: log.pending == 0)
    ops.free = 50  # room for half a record: one short write, ENOSPC, cut back
    log.append({"exchange_id": "e1", "pad": "x" * 200})
    _wait(lambda: log.error is not None)
    writes = ops.writes
    _wait(lambda: log.write_errors >= 10)  # ten retries later the segment was not touched again
    assert ops.writes == writes and not log.healthy
    assert [r["exchange_id"] for r in _lines(tmp_path)] == ["e0"]  # and ends at a line boundary
    ops.free = None  # space freed
    _wait(lambda: log.pending == 0 and log.healthy)
    log.close()
    assert [r["exchange_id"] for r in _lines(tmp_path)] == ["e0", "e1"]


@pytest.mark.parametrize("mode", ["reject", "serve"])
def test_the_gateway_stops_serving_unlogged_and_recovers(tmp_path: Path, fake_upstream: Any, make_gateway: Any,
                                                         mode: str, tally: dict[str, int]) -> None:
    ops = FaultyOps()
    with make_gateway(tmp_path, fake_upstream, ops=ops, log_failure=mode) as g:
        assert g.post("/v1/chat/completions", CHAT).status_code == 200
        _wait(lambda: g.gw.log.pending == 0)
        ops.eio = True
        # Served while the log still looks healthy (nothing failed yet): its record waits for the disk.
        assert g.post("/v1/chat/completions", CHAT).status_code == 200
        _wait(lambda: not g.gw.log.healthy)
        assert httpx.get(f"{g.url}/readyz").json()["status"] == "log unavailable"
        answers = [g.post("/v1/chat/completions", CHAT) for _ in range(5)]
        expected = 503 if mode == "reject" else 200
        assert [r.status_code for r in answers] == [expected] * 5
        if mode == "reject":
            assert answers[0].json()["error"]["code"] == "service_unavailable"
        ops.eio = False
        _wait(lambda: g.gw.log.healthy and g.gw.log.pending == 0)
        assert httpx.get(f"{g.url}/readyz").status_code == 200
        rows = _lines(g.log_dir)
    ids = [r["exchange_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 7
    assert {a.headers["x-request-id"] for a in answers} <= set(ids)
    served = [r for r in rows if r["response"]["status"] == 200]
    assert len(served) == (7 if mode == "serve" else 2)
    tally.update(faults_injected=ops.faults, records_lost=7 - len(rows))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount rights; skipped elsewhere, where the injected faults still run)."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full; the bytes written."""
    total = 0
    with open(path, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                total += f.write(b"\0" * 4096) or 0
        with contextlib.suppress(OSError):
            while True:
                total += f.write(b"\0") or 0
    return total


def test_a_real_full_disk(small_fs: Path, tmp_path: Path, fake_upstream: Any, make_gateway: Any,
                          tally: dict[str, int]) -> None:
    with make_gateway(tmp_path, fake_upstream, log_dir=small_fs / "log") as g:
        served = []
        for _ in range(3):
            r = g.post("/v1/chat/completions", CHAT)
            assert r.status_code == 200
            served.append(r.headers["x-request-id"])
        _wait(lambda: g.gw.log.pending == 0)
        filler = small_fs / "filler"
        _fill(filler)
        statuses = []
        for _ in range(10):
            r = g.post("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "x" * 3000}]})
            statuses.append(r.status_code)
            if r.status_code == 200:
                served.append(r.headers["x-request-id"])
            time.sleep(0.05)
        assert statuses[-1] == 503 and not g.gw.log.healthy
        assert httpx.get(f"{g.url}/readyz").status_code == 503
        failures = g.gw.log.write_errors
        _lines(g.log_dir)  # no partial line while the disk is full
        filler.unlink()
        _wait(lambda: g.gw.log.healthy and g.gw.log.pending == 0)
        rows = _lines(g.log_dir)
    ids = [r["exchange_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 13
    assert set(served) <= set(ids)
    tally.update(faults_injected=failures, served=len(served), records_lost=13 - len(rows))


def test_upstream_resets_and_hangs_mid_stream_are_upstream_errors(tmp_path: Path, fake_upstream: Any,
                                                                  make_gateway: Any, tally: dict[str, int]) -> None:
    with make_gateway(tmp_path, fake_upstream, upstream_timeout=0.5) as g:
        for model, code in (("reset", "upstream_error"), ("hang", "upstream_timeout")):
            r = g.post("/v1/chat/completions", {**CHAT, "model": model, "stream": True})
            assert r.status_code == 200 and '"code": "upstream_error"' in r.text  # an error event ends it
            (record,) = g.record(r.headers["x-request-id"])
            assert record["response"]["finish_reason"] == "upstream_error"
            assert record["response"]["error"]["code"] == code and record["response"]["interrupted"] is True
            # What arrived before the fault is logged (a reset may also discard aiohttp's unread buffer).
            assert record["response"]["content"] == "fo" or model == "reset"
        r = g.post("/v1/chat/completions", {**CHAT, "model": "slow"})
        assert r.status_code == 504 and "127.0.0.1" not in r.text
        assert g.record(r.headers["x-request-id"])[0]["response"]["error"]["code"] == "upstream_timeout"
    tally.update(faults_injected=3, records_lost=0)


def test_a_pooled_connection_the_upstream_is_closing_is_not_reused(tmp_path: Path, make_gateway: Any) -> None:
    """Requests about one upstream keep-alive timeout apart: reused, a connection the upstream was closing reset
    the request on it (a 502 in 20-odd; the readiness probe, every 5 s against uvicorn's 5 s, met it too)."""
    import uvicorn
    from tests.gateway.conftest import FakeUpstream, fake_upstream_app

    from distillguard.lab.loopback import serving

    keep_alive = 0.15  # the upstream's (uvicorn's default is 5 s): the gateway reuses for less
    state = FakeUpstream()
    app = fake_upstream_app(state)
    with serving(app, config=lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                         timeout_keep_alive=keep_alive)) as url:
        state.url = f"{url}/v1"
        with make_gateway(tmp_path, state, upstream_idle_seconds=keep_alive * 0.7) as g, \
                httpx.Client(base_url=g.url, headers=g.headers(), timeout=10) as client:
            statuses = []
            for i in range(60):
                time.sleep(keep_alive * (0.85 + 0.3 * (i % 11) / 10))  # around the moment the upstream closes
                statuses.append(client.post("/v1/chat/completions", json=CHAT).status_code)
    assert statuses == [200] * 60


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test alone (it is killed mid-test)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_redis_down_fails_closed_or_open_and_is_logged(tmp_path: Path, fake_upstream: Any, make_gateway: Any,
                                                       own_redis: tuple[str, Any], mode: str,
                                                       tally: dict[str, int]) -> None:
    url, proc = own_redis
    with make_gateway(tmp_path, fake_upstream, redis_url=url, limits_failure=mode) as g:
        assert g.post("/v1/chat/completions", CHAT).status_code == 200
        proc.kill()
        proc.wait(10)
        r = g.post("/v1/chat/completions", CHAT)
        assert r.status_code == (503 if mode == "closed" else 200)
        (record,) = g.record(r.headers["x-request-id"])
        assert record["gateway"]["limits"] == f"unavailable, failed {mode}"
        assert "redis" not in r.text.lower()
        calls = fake_upstream.count()
    assert calls == (1 if mode == "closed" else 2)
    tally.update(faults_injected=1, records_lost=0)
