"""The example configuration files in docs/ load, and the lab's is the default preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.gateway.config import load_gateway_settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_gateway_example_loads_with_its_documented_defaults() -> None:
    settings = load_gateway_settings(DOCS / "gateway-example.toml")
    assert settings.upstream == "http://127.0.0.1:8001/v1" and settings.live.action == "monitor"
    assert settings.limits.throttle_factor == 0.1 and not settings.canaries.enabled


def test_the_lab_example_is_the_default_preset() -> None:
    pytest.importorskip("torch")  # the lab extra
    from distillguard.lab.experiment import load_config, preset

    assert load_config(DOCS / "lab-example.toml") == preset("default")
