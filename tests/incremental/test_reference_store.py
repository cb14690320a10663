"""The reference store is prepared once per reference and rebuilt when the reference changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.pipeline import Scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("refs")
    scenario = load_scenario("demo").scaled(0.05).benign_only()
    generate(scenario, work / "a", seed=55, fmt="jsonl")
    generate(scenario, work / "b", seed=56, fmt="jsonl")
    return work / "a", work / "b"


def _reference_exchanges(db: Path) -> int:
    with Store.open(db.with_suffix(".reference.duckdb"), read_only=True) as ref:
        return ref.count("exchanges")


def test_another_reference_replaces_the_first(references: tuple[Path, Path], tmp_path: Path) -> None:
    """It was appended to: a scan with last week's reference after one with the week before compared the traffic
    with both weeks at once."""
    a, b = references
    db = tmp_path / "s.duckdb"
    counts = {}
    for name, ref in (("a", a), ("b", b)):
        with Store.open(tmp_path / f"{name}-alone.duckdb") as store, Scan(store) as run:
            run.load_reference(ref)
        counts[name] = _reference_exchanges(tmp_path / f"{name}-alone.duckdb")
    with Store.open(db) as store, Scan(store) as run:
        first = run.load_reference(a)
        assert _reference_exchanges(db) == counts["a"]
        run.load_reference(b)
        assert _reference_exchanges(db) == counts["b"]
        again = run.load_reference(a)
    assert _reference_exchanges(db) == counts["a"]
    assert again[1] == first[1]  # the same accounts kept after vetting


def test_the_same_reference_is_not_prepared_again(references: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = references
    with Store.open(tmp_path / "s.duckdb") as store, Scan(store) as run:
        first = run.load_reference(a)
        monkeypatch.setattr(Scan, "prepare", lambda *args, **kw: pytest.fail("prepared again"))
        again = run.load_reference(a)
    assert again[1] == first[1]
    assert again[0] is not None and first[0] is not None
    assert again[0].features.equals(first[0].features)
