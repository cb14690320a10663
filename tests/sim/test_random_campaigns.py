"""random-campaigns: campaigns drawn from the seed, every request shape, readable by ingest."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distillguard.errors import ConfigError
from distillguard.ingest import ingest_traffic_dir
from distillguard.sim import generate, load_scenario
from distillguard.sim.recipes import ELICITATION, resolve
from distillguard.sim.scenario import ATTACK_STYLES, SHAPES, Group
from distillguard.sim.shapes import ENDPOINTS
from distillguard.store import Store

SCALE = 0.03
SEEDS = range(1, 6)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(folder: Path) -> list[dict]:
    import zstandard

    out = []
    for part in sorted((folder / "exchanges").glob("*.jsonl.zst")):
        text = zstandard.ZstdDecompressor().stream_reader(part.open("rb")).read().decode()
        out += [json.loads(x) for x in text.split("\n") if x]
    return out


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rc") / "t"
    generate(load_scenario("random-campaigns").scaled(SCALE), out, seed=2, fmt="jsonl")
    return out


@pytest.fixture(scope="module")
def traffic_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rc") / "p"
    generate(load_scenario("random-campaigns").scaled(SCALE), out, seed=2, fmt="parquet", workers=1)
    return out


def test_draws_vary_with_the_seed_and_cover_the_tactics() -> None:
    scenario = load_scenario("random-campaigns")
    draws = {seed: resolve(scenario, seed)[1] for seed in SEEDS}
    recipes = [r for rs in draws.values() for r in rs]
    assert len(recipes) >= 20 and all(4 <= len(rs) <= 6 for rs in draws.values())
    assert len({r["campaign_id"] for r in recipes}) == len(recipes)  # unique across seeds
    strip = [[{k: v for k, v in r.items() if k not in ("campaign_id", "actor")} for r in rs]
             for rs in draws.values()]
    assert all(a != b for i, a in enumerate(strip) for b in strip[i + 1:])
    seen = Counter()
    for r in recipes:
        seen.update(("shape", s) for s in r["shapes"])
        seen.update(("style", s) for s in r["styles"])
        seen.update([("timing", r["timing"]), ("proxy", r["proxy"]), ("payment", r["payment"]),
                     ("age", r["account_age"]), ("mix", r["capability_mix"]),
                     ("sleeper", r["sleeper_days"] > 0), ("filler", r["filler_share"] > 0),
                     ("pivot", r["release_pivot"] > 0), ("elicit", bool(r["elicitation"]))])
        assert set(r["elicitation"]) <= set(ELICITATION)
        assert abs(sum(r["shapes"].values()) - 1) < 0.01 and r["style"] in ATTACK_STYLES
    for key, values in {"shape": SHAPES, "style": ATTACK_STYLES, "age": ("aged", "fresh-burst"),
                        "mix": ("single", "mixture"), "sleeper": (True, False)}.items():
        assert all(seen[(key, v)] for v in values), (key, seen)
    sizes = [r["accounts_drawn"] for r in recipes]
    assert min(sizes) <= 10 and max(sizes) >= 100  # a handful to hundreds


def test_period_scale_and_benign_only() -> None:
    scenario = load_scenario("random-campaigns")
    full, recipes = resolve(scenario, 4)
    half, _ = resolve(scenario.scaled(0.5), 4)
    benign, none = resolve(scenario.benign_only(), 4)
    assert 7 <= full.days <= 14 and none == [] and not any(g.is_attack for g in benign.groups)
    assert (benign.days, benign.release_day) == (full.days, full.release_day)
    attacks = [g for g in full.groups if g.is_attack]
    assert [g.name for g in attacks] == [r["campaign_id"] for r in recipes]
    assert sum(g.accounts for g in half.groups if g.is_attack) < sum(g.accounts for g in attacks)


def test_same_seed_same_bytes(traffic_parquet: Path, tmp_path: Path) -> None:
    generate(load_scenario("random-campaigns").scaled(SCALE), tmp_path / "again", seed=2, fmt="parquet",
             workers=2)
    assert _digest(traffic_parquet) == _digest(tmp_path / "again")


def test_labels_and_manifest_name_the_campaigns(traffic: Path) -> None:
    manifest = json.loads((traffic / "manifest.json").read_text())
    recipes = {r["campaign_id"]: r for r in manifest["campaigns"]}
    labels = [json.loads(x) for x in (traffic / "labels.jsonl").read_text().splitlines()]
    attack = [lab for lab in labels if lab["is_attack"]]
    assert {lab["campaign_id"] for lab in attack} == set(recipes)
    for lab in attack:
        r = recipes[lab["campaign_id"]]
        assert (lab["actor"], lab["style"]) == (r["actor"], r["style"])
    per_camp = Counter(lab["campaign_id"] for lab in attack)
    assert all(per_camp[c] == r["accounts"] for c, r in recipes.items())
    assert manifest["attack_accounts"] == len(attack) and 7 <= manifest["days"] <= 14


def test_every_shape_is_written_as_the_spec_describes(traffic: Path) -> None:
    rows = _rows(traffic)
    by_endpoint = Counter(r.get("endpoint") for r in rows)
    assert set(by_endpoint) == set(ENDPOINTS.values())  # every row names its endpoint
    for r in rows:
        req, ep = r["request"], r["endpoint"]
        if ep == "/v1/completions":
            assert isinstance(req["prompt"], str) and "messages" not in req
        elif ep == "/v1/responses":
            assert "input" in req and "messages" not in req
        elif ep == "/v1/messages":
            assert isinstance(req["max_tokens"], int) and all(
                isinstance(m["content"], list) and m["role"] in ("user", "assistant") for m in req["messages"])
        else:
            assert "messages" in req
    multi = [r for r in rows if r["endpoint"] == "/v1/messages" and len(r["request"]["messages"]) > 1]
    assert multi, "Anthropic Messages multi-turn requests"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_ingest_reads_every_row_of_every_shape(fmt: str, traffic: Path, traffic_parquet: Path,
                                               tmp_path: Path) -> None:
    folder = traffic if fmt == "jsonl" else traffic_parquet
    manifest = json.loads((folder / "manifest.json").read_text())
    with Store.open(tmp_path / "s.duckdb") as store:
        report = ingest_traffic_dir(folder, store)
        assert report.quarantined == 0, store.read("quarantine").to_pylist()[:3]
        assert report.exchanges_added == manifest["exchanges"]
        assert store.count("accounts") == manifest["accounts"]
        in_log = {r["account_id"] for r in store.query("SELECT DISTINCT account_id FROM exchanges").to_pylist()}
        formats = {r["request_format"] for r in
                   store.query("SELECT DISTINCT request_format FROM exchanges").to_pylist()}
    assert {"chat", "responses", "anthropic", "completions"} <= formats
    labels = {json.loads(x)["account_id"] for x in (folder / "labels.jsonl").read_text().splitlines()}
    assert labels == in_log
    if fmt == "parquet":
        kinds = {p.name.split("-", 2)[-1] for p in (folder / "exchanges").iterdir()}
        assert kinds == {f"{s}.parquet" for s in SHAPES}
        assert sum(pq.read_metadata(p).num_rows for p in (folder / "exchanges").iterdir()) == manifest["exchanges"]


def test_new_group_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shapes"):
        Group("x", "chat", 1, 10, shapes=(("grpc", 1.0),))
    with pytest.raises(ConfigError, match="elicit_rate"):
        Group("x", "chat", 1, 10, elicit_rate=1.5)
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndays = 2\n[[groups]]\nname = "c1"\nstyle = "reasoning-traces"\naccounts = 3\n'
                    'exchanges_per_account = 60\nis_attack = true\ntiming = "bursts"\nnetwork = "proxy-pool"\n'
                    'proxy_kind = "datacenter"\nshapes = [["messages", 1.0]]\nsleeper_days = 1.0\n'
                    'style_mix = [["reasoning-traces", 0.5], ["agentic-coding", 0.5]]\n'
                    'elicit = ["Show all steps."]\nelicit_rate = 1.0\n')
    generate(load_scenario(str(path)), tmp_path / "t", seed=0, fmt="jsonl")
    rows = _rows(tmp_path / "t")
    assert {r["endpoint"] for r in rows} == {"/v1/messages"}
    asns = {r["client"]["asn"] for r in rows}
    assert asns and asns <= {65001, 65002, 64514, 64515}  # datacenter exits only
    harvest = [r for r in rows if "Show all steps." in json.dumps(r["request"])]
    assert 0 < len(harvest) < len(rows)  # the sleeper phase comes first, without the phrase
    first = min(r["timestamp"] for r in harvest)
    assert all("Show all steps." not in json.dumps(r["request"]) for r in rows if r["timestamp"] < first)
