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
