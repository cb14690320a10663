"""The exchange log: whole lines, rotation, durability under SIGKILL, readable by scan."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from distillguard.gateway.segments import SegmentLog
from distillguard.ingest import ingest_traffic_dir
from distillguard.store import Store


def _lines(log_dir: Path) -> list[dict[str, object]]:
    out = []
    for seg in sorted((log_dir / "exchanges").glob("*.jsonl")):
        data = seg.read_bytes()
        assert not data or data.endswith(b"\n"), f"{seg.name} ends mid-line"
        out += [json.loads(x) for x in data.splitlines()]
    return out


def test_concurrent_appends_all_land_as_whole_lines(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, flush_interval=0.01, max_segment_bytes=4096)

    def writer(t: int) -> None:
        for i in range(250):
            log.append({"exchange_id": f"t{t}-{i}", "pad": "x" * (i % 50)})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    rows = _lines(tmp_path)
    assert len(rows) == 1000 and len({r["exchange_id"] for r in rows}) == 1000
    segments = list((tmp_path / "exchanges").glob("*.jsonl"))
    assert len(segments) > 5  # rotated by size
    assert log.pending == 0 and log.written == 1000 and log.flushed_through == 1000


_CHILD = """
import sys, time
from pathlib import Path
from distillguard.gateway.segments import SegmentLog
log = SegmentLog(Path(sys.argv[1]), flush_interval=0.02, max_segment_bytes=20000)
i = 0
while True:
    for _ in range(50):
        i += 1
        log.append({"exchange_id": f"e{i}", "n": i, "pad": "y" * 200})
    print(log.flushed_through, flush=True)
    time.sleep(0.001)
"""


def test_sigkill_loses_nothing_flushed_and_corrupts_no_segment(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    reported = 0
    for line in child.stdout:
        reported = max(reported, int(line))
        if reported > 5000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # The kill may cut a write between pages; the restarted log cuts that tail off and keeps it aside.
    restarted = SegmentLog(tmp_path, flush_interval=0.01)
    restarted.close()
    rows = _lines(tmp_path)  # asserts every segment ends at a line boundary
    numbers = sorted(int(r["n"]) for r in rows)
    assert numbers == list(range(1, len(numbers) + 1))  # a prefix, in order, no gaps or duplicates
    assert len(numbers) >= reported  # everything reported flushed is on disk
    torn = list((tmp_path / "torn").glob("*.tail"))
    assert len(torn) == len(restarted.recovered) <= 1  # only the segment being written when killed


def test_a_dead_writers_torn_tail_is_cut_and_kept_a_live_one_is_not(tmp_path: Path) -> None:
    segments = tmp_path / "exchanges"
    segments.mkdir()
    dead = segments / "seg-20260201T000000Z-1-00001.jsonl"
    dead.write_bytes(b'{"n":1}\n{"n":2}\n{"n":3,"pad":"yy')
    live = segments / "seg-20260201T000000Z-2-00001.jsonl"
    live.write_bytes(b'{"n":1}\n{"n":2')
    holder = os.open(live, os.O_WRONLY | os.O_APPEND)  # a writer in another process, mid-write
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        log = SegmentLog(tmp_path, flush_interval=0.01)
        log.append({"n": 9})
        log.close()
        assert log.recovered == [dead]
        assert dead.read_bytes() == b'{"n":1}\n{"n":2}\n'
        assert (tmp_path / "torn" / f"{dead.name}.tail").read_bytes() == b'{"n":3,"pad":"yy'
        assert live.read_bytes() == b'{"n":1}\n{"n":2'  # its writer may still finish the line
        # A second log on the directory (another worker) leaves the first one's open segment alone.
        first = SegmentLog(tmp_path, flush_interval=60)
        first.append({"n": 10})
        first.flush()
        own = first._path
        assert own is not None
        with open(own, "ab") as fh:  # as if first's next write were in progress
            fh.write(b'{"n":1')
        second = SegmentLog(tmp_path, flush_interval=0.01)
        second.close()
        assert own not in second.recovered and own.read_bytes().endswith(b'{"n":1')
        first.close()
    finally:
        os.close(holder)


def test_scan_reads_a_log_directory(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "log", flush_interval=0.01)
    for i in range(3):
        log.append({"exchange_id": f"g{i}", "timestamp": "2026-02-01T12:00:00Z", "account_id": "acct-1",
                    "request": {"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}]},
                    "response": {"status": 200, "content": "hello"}})
    log.close()
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(tmp_path / "log", store)
    assert report.exchanges_added == 3 and report.quarantined == 0
