"""``distillguard bench``: read labels and a scan's output contract, compute every metric."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from rich.table import Table

from distillguard.bench.metrics import (
    campaign_recall,
    cluster_agreement,
    flag_rates,
    ranking,
    weighted_catch,
)
from distillguard.bench.replay_metrics import replay_summary
from distillguard.errors import InputError


def _labels(traffic_dir: Path) -> list[dict[str, Any]]:
    if (traffic_dir / "labels.parquet").is_file():
        return list(pq.read_table(traffic_dir / "labels.parquet").to_pylist())
    path = traffic_dir / "labels.jsonl"
    if not path.is_file():
        raise InputError(f"no labels in {traffic_dir}: expected labels.jsonl or labels.parquet")
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def evaluate(traffic_dir: Path, scan_out: Path, replay_dir: Path | None = None) -> dict[str, Any]:
    """All metrics of the simulator issue for one scan (and a replay, if given), as plain data."""
    traffic_dir, scan_out = Path(traffic_dir), Path(scan_out)
    labels = _labels(traffic_dir)
    for name in ("accounts.parquet", "campaigns.json"):
        if not (scan_out / name).is_file():
            raise InputError(f"{scan_out} is not a scan output directory: missing {name}")
    scanned = {r["account_id"]: r for r in pq.read_table(scan_out / "accounts.parquet").to_pylist()}
    campaigns = orjson.loads((scan_out / "campaigns.json").read_bytes())
    in_campaign = {a for c in campaigns for a in c["account_ids"]}
    rows = []
    for lab in labels:
        s = scanned.get(lab["account_id"], {})
        rows.append({**lab, "score": s.get("score", float("-inf")) if s else float("-inf"),
                     "flagged": bool(s.get("flagged", False)), "cluster_id": s.get("cluster_id"),
                     "n_exchanges": s.get("n_exchanges") or 0, "seen": bool(s)})
    y = [bool(r["is_attack"]) for r in rows]
    scores = [r["score"] if r["seen"] else -1e300 for r in rows]
    flagged = [r["flagged"] for r in rows]
    out: dict[str, Any] = {
        "accounts": len(rows), "attack_accounts": sum(y), "unseen_accounts": sum(not r["seen"] for r in rows),
        **ranking(y, scores), "flagged": flag_rates(y, flagged),
    }
    by_pop: dict[str, list[bool]] = defaultdict(list)
    by_style: dict[str, list[bool]] = defaultdict(list)
    by_campaign: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r["is_attack"]:
            by_style[r["style"]].append(r["flagged"])
            by_campaign[r["campaign_id"]].append(r["flagged"])
        else:
            by_pop[r["population"] or "unknown"].append(r["flagged"])
    out["benign_fpr_by_population"] = {p: {"accounts": len(f), "flagged": sum(f), "fpr": sum(f) / len(f)}
                                       for p, f in sorted(by_pop.items())}
    out["attack_recall_by_style"] = {s: {"accounts": len(f), "flagged": sum(f), "recall": sum(f) / len(f)}
                                     for s, f in sorted(by_style.items())}
    out["campaigns"] = campaign_recall(by_campaign)
    out["recall_by_campaign"] = {c: {"accounts": len(f), "flagged": sum(f), "recall": sum(f) / len(f)}
                                 for c, f in sorted(by_campaign.items())}
    attack = [r for r in rows if r["is_attack"]]
    busy = [r["flagged"] for r in attack if r["n_exchanges"] >= 50]
    out["recall_50plus"] = sum(busy) / len(busy) if busy else None  # accounts with >= 50 exchanges
    out["attack_exchange_share_caught"] = weighted_catch([r["n_exchanges"] for r in attack],
                                                         [r["flagged"] for r in attack])
    out["cluster_ari"] = cluster_agreement([r["campaign_id"] for r in attack],
                                           [r["cluster_id"] for r in attack])
    out["benign_in_attack_campaigns"] = sum(1 for r in rows if not r["is_attack"] and r["account_id"] in in_campaign)
    out["reported_campaigns"] = len(campaigns)
    if replay_dir is not None:
        path = Path(replay_dir) / "replay.parquet"
        if not path.is_file():
            raise InputError(f"{replay_dir} is not a replay output directory: missing replay.parquet")
        out["replay"] = replay_summary(pq.read_table(path), {r["account_id"]: r["campaign_id"] for r in attack})
    return out


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def metrics_table(m: dict[str, Any], brief: bool = False) -> Table:
    """A rich table of the headline metrics (and the breakdowns unless ``brief``)."""
    t = Table("metric", "value", title="Detection benchmark")
    fl = m["flagged"]
    for name, value in [
        ("ROC-AUC", m["roc_auc"]), ("PR-AUC", m["pr_auc"]), ("precision (flagged)", fl["precision"]),
        ("recall (flagged)", fl["recall"]), ("recall, accounts with >= 50 exchanges", m["recall_50plus"]),
        ("false-positive rate", fl["fpr"]),
        ("campaign recall", m["campaigns"]["recall"]),
        ("attack exchanges caught", m["attack_exchange_share_caught"]),
        ("cluster ARI (attack accounts)", m["cluster_ari"]),
        ("benign accounts in campaigns", m["benign_in_attack_campaigns"]),
    ]:
        t.add_row(name, _f(value))
    if "replay" in m:
        t.add_row("replay: median share sent before first flag", _f(m["replay"]["median_share_before_flag"]))
        t.add_row("replay: median hours to detect", _f(m["replay"]["median_hours_to_detect"]))
    if not brief:
        for pop, v in m["benign_fpr_by_population"].items():
            t.add_row(f"FPR {pop}", f"{v['fpr']:.3f} ({v['flagged']}/{v['accounts']})")
        for style, v in m["attack_recall_by_style"].items():
            t.add_row(f"recall {style}", f"{v['recall']:.3f} ({v['flagged']}/{v['accounts']})")
    return t
