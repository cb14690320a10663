"""Benchmark metrics on hand-made cases with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.bench import evaluate
from distillguard.bench.metrics import campaign_recall, cluster_agreement, flag_rates, ranking, weighted_catch


def test_ranking_perfect_and_inverted() -> None:
    assert ranking([False, False, True, True], [0.1, 0.2, 0.8, 0.9]) == {"roc_auc": 1.0, "pr_auc": 1.0}
    assert ranking([False, False, True, True], [0.9, 0.8, 0.2, 0.1])["roc_auc"] == 0.0
    assert ranking([True, True], [1, 2]) == {"roc_auc": None, "pr_auc": None}


def test_flag_rates() -> None:
    r = flag_rates([True, True, True, False, False, False, False], [True, True, False, True, False, False, False])
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["fpr"] == pytest.approx(1 / 4)
    assert flag_rates([False], [False])["precision"] is None


def test_campaign_recall_half_rule() -> None:
    assert campaign_recall({"a": [True, False], "b": [True, False, False], "c": []}) == {
        "detected": 1, "campaigns": 3, "recall": 1 / 3}


def test_weighted_catch_and_ari() -> None:
    assert weighted_catch([100, 1, 1], [True, False, False]) == pytest.approx(100 / 102)
    assert cluster_agreement(["a", "a", "b"], ["x", "y", "z"]) == 0.0
    assert cluster_agreement(["a", "a", "b", "b"], ["y", "y", "x", "x"]) == 1.0


def test_evaluate_on_a_hand_made_scan(tmp_path: Path) -> None:
    traffic, out = tmp_path / "t", tmp_path / "o"
    traffic.mkdir()
    out.mkdir()
    labels = [
        {"account_id": "a1", "is_attack": True, "campaign_id": "c1", "actor": "x", "style": "s", "population": None},
        {"account_id": "a2", "is_attack": True, "campaign_id": "c1", "actor": "x", "style": "s", "population": None},
        *({"account_id": b, "is_attack": False, "campaign_id": None, "actor": None, "style": "chat",
           "population": "chat"} for b in ("b1", "b2")),
    ]
    (traffic / "labels.jsonl").write_text("\n".join(json.dumps(x) for x in labels))
    pq.write_table(pa.table({
        "account_id": ["a1", "a2", "b1", "b2"], "score": [0.9, 0.4, 0.5, 0.1],
        "flagged": [True, False, True, False], "cluster_id": ["k", "k", "k", None],
        "reasons": [[], [], [], []], "n_exchanges": [300, 100, 10, 10],
    }), out / "accounts.parquet")
    (out / "campaigns.json").write_text(json.dumps([{"campaign_id": "x", "account_ids": ["a1", "a2", "b1"]}]))
    m = evaluate(traffic, out)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["flagged"]["precision"] == 0.5 and m["flagged"]["recall"] == 0.5
    assert m["benign_fpr_by_population"]["chat"]["fpr"] == 0.5
    assert m["campaigns"]["recall"] == 1.0
    assert m["attack_exchange_share_caught"] == pytest.approx(0.75)
    assert m["cluster_ari"] == 1.0
    assert m["benign_in_attack_campaigns"] == 1
