"""Shared fixtures: small simulated traffic directories, generated once per run."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distillguard.sim import generate, load_scenario

SLOW = (
    # Each takes tens of seconds on a 2-core machine, or shares a fixture that does. Marked `slow` here, in one
    # list, so that the fast subset (`pytest -m "not slow and not spark"`, README "Run the tests") is one decision.
    "tests/forensics/test_forensics.py",  # trains students on watermarked and canaried text
    "tests/lab/test_experiment.py",  # the whole tiny lab experiment
    "tests/ingest/test_fuzz.py",  # Hypothesis: generated traffic folders
    "tests/gateway/test_fuzz.py",  # Hypothesis: requests against a running gateway
    "tests/pipeline/test_replay.py",  # replays in windows, each a scan
    "tests/pipeline/test_untrusted_history.py",  # several scans with vetted references
    "tests/detect/test_windows.py::test_scan_with_windows_on",
    "tests/ingest/test_columnar.py::test_the_simulators_traffic_is_flattened_in_duckdb_identically",
    "tests/signals/test_signals.py::test_parallel_enrichment_equals_serial",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def small_traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tenth of the demo scenario as JSONL (a few thousand exchanges)."""
    out = tmp_path_factory.mktemp("traffic") / "small"
    generate(load_scenario("demo").scaled(0.1), out, seed=3, fmt="jsonl")
    return out


@pytest.fixture(scope="session")
def demo_traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full demo scenario as Parquet shards."""
    out = tmp_path_factory.mktemp("traffic") / "demo"
    generate(load_scenario("demo"), out, seed=0, fmt="parquet")
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 built from a config with the lab tokenizer, saved locally (nothing downloaded)."""
    torch = pytest.importorskip("torch")  # the lab extra: pip install -e '.[lab]'

    from transformers import GPT2Config, GPT2LMHeadModel

    from distillguard.lab.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    texts = [f"What is {a} + {b}? <think>{a} + {b} = {a + b}</think>{a + b}" for a in range(30) for b in range(30)]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def serve() -> Any:
    """``serve(app)``: a context manager running an ASGI app on loopback (see ``serving``)."""
    from distillguard.lab.loopback import serving

    return serving


@pytest.fixture(scope="session")
def model_server(tiny_model_dir: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the lab model server on loopback, model ``tiny``."""
    from distillguard.lab.loopback import serving
    from distillguard.lab.serve import create_app, load_model

    with serving(create_app(load_model(tiny_model_dir, "tiny"))) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port (CI installs it; skipped where it is absent)."""
    import shutil
    import subprocess

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    from distillguard.lab.loopback import free_port

    port = free_port()
    work = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
