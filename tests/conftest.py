"""Shared fixtures: small simulated traffic directories, generated once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.sim import generate, load_scenario


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
