"""Scans on the history a provider really has: last period as it was (attackers inside), or none."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distillguard.bench import evaluate
from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.store import Store


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Half the demo scenario this week, and the same scenario (campaigns included) a week earlier."""
    work = tmp_path_factory.mktemp("periods")
    scenario = load_scenario("demo").scaled(0.5)
    generate(scenario, work / "this", seed=11, fmt="jsonl")
    generate(scenario, work / "last", seed=111, fmt="jsonl")
    return work / "this", work / "last"


def _scan(traffic: Path, out: Path, db: Path, **kwargs: Path) -> dict[str, object]:
    with Store.open(db) as store:
        scan(traffic, out, store=store, **kwargs)  # type: ignore[arg-type]
    return json.loads((out / "summary.json").read_text())


def test_an_unvetted_reference_is_vetted_and_does_not_vouch(periods: tuple[Path, Path], tmp_path: Path) -> None:
    this, last = periods
    summary = _scan(this, tmp_path / "out", tmp_path / "s.duckdb", reference_dir=last)
    labels = [json.loads(x) for x in (last / "labels.jsonl").read_text().splitlines()]
    attackers_last = {r["account_id"] for r in labels if r["is_attack"]}
    set_aside = summary["reference_set_aside"]
    assert isinstance(set_aside, dict) and set_aside["accounts"] >= 0.8 * len(attackers_last)
    assert set(set_aside["examples"]) <= attackers_last  # what it set aside were attackers
    metrics = evaluate(this, tmp_path / "out")
    assert metrics["campaigns"]["recall"] == 1.0 and metrics["recall_50plus"] >= 0.9
    assert metrics["flagged"]["fpr"] <= 0.01 and metrics["benign_in_attack_campaigns"] == 0


def test_without_a_reference_the_population_vets_itself(periods: tuple[Path, Path], tmp_path: Path) -> None:
    this, _ = periods
    summary = _scan(this, tmp_path / "out", tmp_path / "s.duckdb")
    assert summary["reference"] == "the scanned population"
    metrics = evaluate(this, tmp_path / "out")
    assert metrics["campaigns"]["recall"] == 1.0 and metrics["recall_50plus"] >= 0.9
    assert metrics["flagged"]["fpr"] <= 0.01 and metrics["benign_in_attack_campaigns"] == 0


def test_cleared_accounts_are_not_flagged_again_and_are_remembered(
    periods: tuple[Path, Path], tmp_path: Path
) -> None:
    this, _ = periods
    db = tmp_path / "s.duckdb"
    _scan(this, tmp_path / "first", db)
    first = {r["account_id"]: r for r in pq.read_table(tmp_path / "first" / "accounts.parquet").to_pylist()}
    loner = next(a for a, r in sorted(first.items()) if r["flagged"] and r["cluster_id"] is None) \
        if any(r["flagged"] and r["cluster_id"] is None for r in first.values()) else None
    member = next(a for a, r in sorted(first.items()) if r["flagged"] and r["cluster_id"] is not None)
    cleared = [a for a in (loner, member) if a]
    (tmp_path / "cleared.txt").write_text("# cleared by an analyst\n" + "\n".join(f"{a} reviewed" for a in cleared))
    summary = _scan(this, tmp_path / "second", db, benign_file=tmp_path / "cleared.txt")
    assert summary["cleared_accounts"] == len(cleared)
    for out in ("second",):
        rows = {r["account_id"]: r for r in pq.read_table(tmp_path / out / "accounts.parquet").to_pylist()}
        assert not any(rows[a]["flagged"] for a in cleared)
        campaigns = json.loads((tmp_path / out / "campaigns.json").read_text())
        assert not {a for c in campaigns for a in c["account_ids"]} & set(cleared)
    # The store remembers the decision: a later scan without the file still clears them.
    assert _scan(this, tmp_path / "third", db)["cleared_accounts"] == len(cleared)
