"""``watermark keygen`` and ``--help`` start without the heavy libraries (#21.9: keygen took 15-25 s)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "duckdb", "sklearn", "ibis", "pyarrow")
SCRIPT = """
import sys
from distillguard.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def _heavy_imports(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          check=True, timeout=120)
    return list(ast.literal_eval(done.stderr.strip().splitlines()[-1]))


def test_keygen_imports_no_heavy_library(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    assert _heavy_imports("watermark", "keygen", "--scheme", "greenlist", "--version", "v1", "--out", str(keys)) == []
    record = json.loads(keys.read_text())["keys"][0]
    assert record["scheme"] == "greenlist" and record["version"] == "v1" and 0 <= record["key"] < 2**63


def test_help_imports_no_heavy_library() -> None:
    assert _heavy_imports("--help") == []


def test_keygen_keys_load_as_their_schemes(tmp_path: Path) -> None:
    """The light path's records are what the schemes accept (the keyring checks each with its scheme)."""
    pytest.importorskip("torch")
    from distillguard.watermark.base import schemes
    from distillguard.watermark.keyfile import BUILT_IN, fresh_key
    from distillguard.watermark.keyring import Keyring

    assert set(BUILT_IN) <= set(schemes())
    ring = Keyring.from_records([fresh_key(name, f"v-{name}") for name in BUILT_IN])
    assert {ring.scheme(f"v-{name}").name for name in BUILT_IN} == set(BUILT_IN)
