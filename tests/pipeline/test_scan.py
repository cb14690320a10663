"""End to end: a scan over simulated traffic with 5% corrupt lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from distillguard.pipeline import scan
from distillguard.store import Store

CORRUPTIONS = [
    lambda line: line[: len(line) // 2],  # cut in the middle: invalid JSON
    lambda line: line.replace(b'"account_id"', b'"acount_id"'),
    lambda line: line.replace(b'"timestamp": "', b'"timestamp": "x'),
    lambda line: line.replace(b'"account_id": "', b'"account_id": 7, "_": "'),
    lambda line: line[:20] + b"\xc3\x28" + line[20:],  # invalid UTF-8
]


@pytest.fixture(scope="module")
def corrupted(small_traffic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    """The small traffic as one JSONL file with 5% of its lines corrupted."""
    out = tmp_path_factory.mktemp("corrupt")
    for name in ("accounts.jsonl", "events.jsonl", "labels.jsonl"):
        (out / name).write_bytes((small_traffic / name).read_bytes())
    lines = []
    for shard in sorted((small_traffic / "exchanges").glob("*.jsonl.zst")):
        with zstandard.open(shard, "rb") as fh:
            lines += [json.dumps(json.loads(x)).encode() for x in fh.read().splitlines()]
    rng = random.Random(0)
    bad = set(rng.sample(range(len(lines)), k=len(lines) // 20))
    for i in bad:
        lines[i] = CORRUPTIONS[i % len(CORRUPTIONS)](lines[i])
    (out / "exchanges.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return out, {i + 1 for i in bad}


def test_scan_quarantines_exactly_the_corrupt_lines(corrupted: tuple[Path, set[int]], tmp_path: Path) -> None:
    traffic, bad_lines = corrupted
    with Store.open(tmp_path / "s.duckdb") as store:
        result = scan(traffic, tmp_path / "out", store=store)
        quarantined = store.query("SELECT line FROM quarantine WHERE kind = 'exchanges'").column("line")
        assert set(quarantined.to_pylist()) == bad_lines
        assert result.ingest.quarantined == len(bad_lines)
        total = sum(1 for _ in (traffic / "exchanges.jsonl").open("rb"))
        assert store.count("exchanges") == total - len(bad_lines)


def test_scan_writes_the_output_contract(corrupted: tuple[Path, set[int]], tmp_path: Path) -> None:
    traffic, _ = corrupted
    out = tmp_path / "out"
    with Store.open(tmp_path / "s.duckdb") as store:
        scan(traffic, out, store=store)
    accounts = pq.read_table(out / "accounts.parquet")
    schema = accounts.schema
    assert schema.field("account_id").type == pa.string()
    assert schema.field("score").type == pa.float64()
    assert schema.field("flagged").type == pa.bool_()
    assert schema.field("cluster_id").type == pa.string()
    assert schema.field("reasons").type == pa.list_(pa.string())
    labels = {json.loads(x)["account_id"] for x in (traffic / "labels.jsonl").read_text().splitlines()}
    assert set(accounts.column("account_id").to_pylist()) <= labels
    campaigns = json.loads((out / "campaigns.json").read_text())
    assert isinstance(campaigns, list)
    for c in campaigns:
        assert {"campaign_id", "account_ids", "exchange_count", "score", "capabilities",
                "first_seen", "last_seen", "evidence"} <= set(c)
        assert abs(sum(c["capabilities"].values()) - 1.0) < 1e-3
    html = (out / "report.html").read_text()
    assert "<html" in html and "distillguard scan report" in html
    policy = json.loads((out / "policy.json").read_text())
    assert all(p["subject"].split(":", 1)[0] in ("account", "cluster") and p["action"] in
               ("allow", "monitor", "throttle", "challenge", "block") and p["expires_at"] for p in policy)
    assert all(p["members"] for p in policy if p["subject"].startswith("cluster:"))


def test_scan_ranks_attackers_above_benign(demo_traffic: Path, tmp_path: Path) -> None:
    """The simple baseline already ranks the demo's harvesters high (honest, not tuned)."""
    from distillguard.bench import evaluate

    with Store.open(tmp_path / "s.duckdb") as store:
        scan(demo_traffic, tmp_path / "out", store=store)
    metrics = evaluate(demo_traffic, tmp_path / "out")
    assert metrics["roc_auc"] > 0.8
    assert metrics["flagged"]["fpr"] <= 0.05


def test_scan_with_a_benign_reference(small_traffic: Path, tmp_path: Path) -> None:
    from distillguard.bench import evaluate
    from distillguard.sim import generate, load_scenario

    generate(load_scenario("demo").scaled(0.1).benign_only(), tmp_path / "ref", seed=77, fmt="jsonl")
    with Store.open(tmp_path / "s.duckdb") as store:
        scan(small_traffic, tmp_path / "out", store=store, reference_dir=tmp_path / "ref")
    assert (tmp_path / "s.reference.duckdb").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scorer"] == "knn-novelty" and summary["reference"] == str(tmp_path / "ref")
    metrics = evaluate(small_traffic, tmp_path / "out")
    assert metrics["roc_auc"] > 0.9
    # ~45 benign accounts and a ~40-account reference: one false positive is 2%.
    assert metrics["flagged"]["fpr"] <= 0.05
    # 6 attack accounts: the 3-account campaign is found; a linked pair (below the 3-account campaign
    # minimum) and a lone reasoning harvester are judged on their own scores, against a 45-account
    # reference calibrated leaving each reference cluster out (so its threshold is high): they score
    # 0.78-0.92 of it since the elicitation classifier also reads rationale and non-English requests
    # (more of the reference's ordinary prompts elicit a little), 0.96-1.08 before.
    assert metrics["flagged"]["recall"] >= 0.5 and metrics["campaigns"]["detected"] >= 1
    assert metrics["roc_auc"] > 0.9
