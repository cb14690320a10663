"""A Spark standalone cluster on loopback, from the installed PySpark: one master and N workers.

For tests and benchmarks of ``scan --engine spark --master spark://...``: nothing is
downloaded, ``spark-class`` in the pyspark package starts the master and worker JVMs
(Java 17), and every process it started is stopped on the way out, failure or not.

    with standalone_cluster(2, work_dir=Path("/tmp/cluster")) as master:
        scan(traffic, out, store=store, engine_name="spark", spark=SparkOptions(master))
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distillguard.errors import EngineError

__all__ = ["java_missing", "standalone_cluster"]

_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def java_missing() -> str | None:
    """Why no standalone cluster can start here (no Java, no PySpark), or None."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java is not installed (the Spark standalone cluster needs Java 17)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed: pip install 'distillguard[spark]'"
    return None


@contextmanager
def standalone_cluster(
    workers: int = 2, *, work_dir: Path, cores: int = 1, memory: str = "1500m", timeout: float = 120.0,
) -> Iterator[str]:
    """Start a master and ``workers`` workers (``cores`` and ``memory`` each) on 127.0.0.1; yield the
    master's URL (``spark://127.0.0.1:PORT``) once every worker has registered. Logs go to ``work_dir``."""
    why = java_missing()
    if why:
        raise EngineError(why)
    import pyspark

    home = Path(pyspark.__file__).parent
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(work_dir), "PYSPARK_PYTHON": sys.executable}
    port, ui = _free_port(), _free_port()
    master = f"spark://127.0.0.1:{port}"
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        procs.append(_start(home, [_MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port),
                                   "--webui-port", str(ui)], env, work_dir / "master.log"))
        for i in range(workers):
            procs.append(_start(home, [_WORKER_CLASS, master, "--host", "127.0.0.1", "--cores", str(cores),
                                       "--memory", memory, "--webui-port", str(_free_port()),
                                       "--work-dir", str(work_dir / f"worker-{i}")],
                                env, work_dir / f"worker-{i}.log"))
        _wait_for_workers(ui, workers, procs, timeout)
        yield master
    finally:
        for proc, _ in reversed(procs):
            _stop(proc)


def _start(home: Path, args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """One JVM in its own process group (the executors a worker starts join it, and go with it)."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, log


def _wait_for_workers(
    ui: int, workers: int, procs: list[tuple[subprocess.Popen[bytes], Path]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    alive = 0
    while time.monotonic() < deadline:
        for proc, log in procs:
            if proc.poll() is not None:
                raise EngineError(f"a Spark process exited ({proc.returncode}): {_tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as reply:
                alive = int(json.load(reply).get("aliveworkers", 0))
        except (OSError, ValueError):
            alive = 0
        if alive >= workers:
            return
        time.sleep(0.5)
    raise EngineError(f"{alive} of {workers} Spark workers registered within {timeout:.0f} s: "
                      f"{_tail(procs[-1][1])}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this module started, then SIGKILL to whatever of it lingers
    (an executor whose worker went first)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
