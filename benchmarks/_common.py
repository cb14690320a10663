"""Helpers shared by the benchmark scripts: timing, peak memory, result files."""

from __future__ import annotations

import json
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def peak_rss_mib() -> dict[str, float]:
    """Peak resident memory of this process and of its (waited-for) children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": round(own, 1), "largest_child": round(kids, 1)}


@contextmanager
def timed(into: dict[str, Any], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    into[key] = round(time.perf_counter() - t0, 2)


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}


def write_result(name: str, data: dict[str, Any], markdown: str) -> None:
    """Write ``results/NAME.json`` and ``results/NAME.md`` and print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


@contextmanager
def workdir(given: Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (kept afterwards), or a temporary folder removed at the end."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tree_rss_mib(root: int) -> float:
    """Resident memory of process ``root`` and all its descendants together, MiB (from ``/proc``).

    Worker processes count too, so this is what the machine must hold (pages
    shared between processes count once per process: an upper bound).
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    page = resource.getpagesize()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
    return total / 2**20


class PeakTreeRss:
    """Samples ``tree_rss_mib(pid)`` every ``interval`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        import threading

        self.pid, self.interval, self.peak = pid, interval, 0.0
        self.samples: list[tuple[float, float]] = []  # (perf_counter time, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakTreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            mib = tree_rss_mib(self.pid)
            self.samples.append((time.perf_counter(), mib))
            self.peak = max(self.peak, mib)
            self._stop.wait(self.interval)

    def peak_between(self, start: float, end: float) -> float:
        """The largest sample taken in [start, end] (perf_counter times), or the last one before it."""
        inside = [mib for t, mib in self.samples if start <= t <= end]
        before = [mib for t, mib in self.samples if t < start]
        return max(inside or before[-1:] or [0.0])
