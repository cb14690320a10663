"""The simulator: every scenario generates valid, deterministic, labelled traffic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.ingest import ingest_traffic_dir
from distillguard.sim import BUILTIN_NAMES, generate, load_scenario
from distillguard.sim.scenario import STYLES
from distillguard.store import Store

SMALL = {"demo": 0.1, "disclosure-2026": 0.0004, "hard-negatives": 0.15, "evasive": 0.15,
         "random-campaigns": 0.03}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_scenario_is_valid_and_labelled(name: str, tmp_path: Path) -> None:
    stats = generate(load_scenario(name).scaled(SMALL[name]), tmp_path / "t", seed=1, fmt="parquet")
    assert stats.exchanges > 500 and 0 < stats.attack_accounts < stats.accounts
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(tmp_path / "t", store)
        assert report.quarantined == 0, store.read("quarantine").to_pylist()[:3]
        assert report.exchanges_added == stats.exchanges
        assert store.count("accounts") == stats.accounts
        in_log = {r["account_id"] for r in store.query("SELECT DISTINCT account_id FROM exchanges").to_pylist()}
    labels = [json.loads(x) for x in (tmp_path / "t" / "labels.jsonl").read_text().splitlines()]
    assert {lab["account_id"] for lab in labels} == in_log
    for lab in labels:
        assert lab["style"] in STYLES
        assert (lab["campaign_id"] is None) != lab["is_attack"]
        assert (lab["population"] is None) == lab["is_attack"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    scenario = load_scenario("demo").scaled(0.05)
    for fmt in ("jsonl", "parquet"):
        generate(scenario, tmp_path / f"a-{fmt}", seed=7, fmt=fmt)
        generate(scenario, tmp_path / f"b-{fmt}", seed=7, fmt=fmt)
        assert _digest(tmp_path / f"a-{fmt}") == _digest(tmp_path / f"b-{fmt}")
    generate(scenario, tmp_path / "c", seed=8, fmt="jsonl")
    assert _digest(tmp_path / "a-jsonl") != _digest(tmp_path / "c")


def test_output_does_not_depend_on_workers_or_shard_size_within_a_shard(tmp_path: Path) -> None:
    scenario = load_scenario("demo").scaled(0.05)
    generate(scenario, tmp_path / "one", seed=4, fmt="parquet", workers=1, rows_per_shard=1000)
    generate(scenario, tmp_path / "two", seed=4, fmt="parquet", workers=2, rows_per_shard=1000)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    assert len(list((tmp_path / "one" / "exchanges").iterdir())) > 1


def test_release_pivot_and_hydra_signals(small_traffic: Path, tmp_path: Path) -> None:
    """Harvesters move to the new model after the release and share proxies and cards."""
    with Store.open(tmp_path / "s.duckdb") as store:
        ingest_traffic_dir(small_traffic, store)
        labels = [json.loads(x) for x in (small_traffic / "labels.jsonl").read_text().splitlines()]
        camp = {lab["account_id"]: lab["campaign_id"] for lab in labels}
        release = store.query("SELECT timestamp FROM events").to_pylist()[0]["timestamp"]
        rows = store.query(
            "SELECT account_id, model, timestamp, client_ip FROM exchanges").to_pylist()
        accounts = store.read("accounts").to_pylist()
    after = [r for r in rows if r["timestamp"] >= release and camp.get(r["account_id"]) == "camp-agentic"]
    share_new = sum(r["model"] == "frontier-3" for r in after) / len(after)
    assert 0.35 < share_new < 0.65
    cards = [a["payment_fingerprint"] for a in accounts if camp.get(a["account_id"]) == "camp-agentic"]
    assert len(set(cards)) < len(cards)
    ips = {}
    for r in rows:
        if camp.get(r["account_id"]) == "camp-agentic":
            ips.setdefault(r["client_ip"], set()).add(r["account_id"])
    assert max(len(v) for v in ips.values()) >= 2


def test_scenario_toml_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndays = 2\n[[groups]]\nname = "chat"\nstyle = "chat"\naccounts = 4\n'
                    'exchanges_per_account = 10\n[[groups]]\nname = "c1"\nstyle = "agentic-coding"\n'
                    'accounts = 2\nexchanges_per_account = 50\nis_attack = true\ntiming = "round-robin"\n'
                    'network = "proxy-pool"\n')
    stats = generate(load_scenario(str(path)), tmp_path / "t", seed=0, fmt="jsonl")
    assert stats.accounts == 6 and stats.attack_accounts == 2


@pytest.mark.parametrize("text, match", [
    ('name = "x"\n[[groups]]\nname = "g"\nstyle = "nope"\naccounts = 1\nexchanges_per_account = 1\n', "style"),
    ('name = "x"\nunknown = 1\n', "unknown"),
])
def test_bad_scenarios_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_scenario(str(path))


def test_unknown_builtin() -> None:
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("nope")


def test_documented_example_scenario_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    scenario = load_scenario(str(root / "docs" / "scenario-example.toml"))
    assert scenario.name == "example" and len(scenario.groups) == 3
    assert sum(g.is_attack for g in scenario.groups) == 1


def _distinct_share(traffic: Path, db: Path) -> float:
    with Store.open(db) as store:
        ingest_traffic_dir(traffic, store)
        row = store.query("SELECT count(DISTINCT prompt_text) / count(*) AS share FROM exchanges").to_pylist()[0]
    return float(row["share"])


def test_prompt_variety_makes_most_prompts_distinct_and_is_off_by_default(tmp_path: Path) -> None:
    from dataclasses import replace

    scenario = load_scenario("disclosure-2026").scaled(0.0004)
    assert scenario.prompt_variety == 0.0
    plain = generate(scenario, tmp_path / "plain", seed=3)
    varied = generate(replace(scenario, prompt_variety=1.0), tmp_path / "varied", seed=3)
    assert (plain.exchanges, plain.accounts) == (varied.exchanges, varied.accounts)  # same plan, other texts
    before = _distinct_share(tmp_path / "plain", tmp_path / "plain.duckdb")
    after = _distinct_share(tmp_path / "varied", tmp_path / "varied.duckdb")
    assert after > 0.5 and after > 2 * before
    manifest = json.loads((tmp_path / "varied" / "manifest.json").read_text())
    assert manifest["prompt_variety"] == 1.0 and "prompt_variety" not in json.loads(
        (tmp_path / "plain" / "manifest.json").read_text())
    with pytest.raises(ConfigError, match="prompt_variety"):
        replace(scenario, prompt_variety=1.5)
