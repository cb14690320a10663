"""Train the safeguard-stripping (jailbreak) classifier shipped in signals/data/.

    python scripts/train_safeguard_model.py [--data-dir ../shared/data]

Positives: in-the-wild jailbreak prompts (jailbreak_llms, MIT). Negatives: real
ordinary requests (Self-Instruct, MT-Bench/Vicuna, GSM8K, MBPP, HumanEval, BFCL)
and the forbidden-question set (sensitive questions asked plainly: a hard
negative, since asking is not stripping safeguards). Held out for testing: every
jailbreak collected from Reddit (other platforms train) and 30% of the negatives.
Writes the model (hashed-feature weights, ~1 MB) and
benchmarks/results/safeguard.{json,md}. Deterministic.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from distillguard.signals.safeguard import MODEL_PATH, VECTORIZER, clip_text  # noqa: E402
from distillguard.sim.datasets import find_data_dir, load_pools  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    data = find_data_dir(args.data_dir)
    with open(data / "jailbreak_llms" / "jailbreak_prompts_2023_05_07.csv", newline="", encoding="utf-8") as fh:
        jail = [(r["prompt"], r["platform"]) for r in csv.DictReader(fh) if r.get("prompt")]
    pools = load_pools(data)
    rng = random.Random(0)
    math = rng.sample([x["prompt"] for x in pools.math], 2000)
    negatives = ([x["prompt"] for x in pools.instructions + pools.chat + pools.code + pools.tools + pools.sensitive]
                 + math)
    rng.shuffle(negatives)
    cut = int(0.7 * len(negatives))
    train = [(t, 1) for t, p in jail if p != "reddit"] + [(t, 0) for t in negatives[:cut]]
    test = [(t, 1) for t, p in jail if p == "reddit"] + [(t, 0) for t in negatives[cut:]]
    x_train = VECTORIZER.transform([clip_text(t) for t, _ in train])
    clf = LogisticRegression(C=2.0, max_iter=3000, class_weight="balanced")
    clf.fit(x_train, [y for _, y in train])
    coef = clf.coef_.ravel()
    used = np.flatnonzero(x_train.sum(axis=0).A1)  # weights of hashed features never seen are 0
    np.savez_compressed(MODEL_PATH, index=used.astype(np.int32), weight=coef[used].astype(np.float32),
                        intercept=np.float32(clf.intercept_[0]))
    from distillguard.signals.safeguard import _load, safeguard_probability

    _load.cache_clear()
    proba = safeguard_probability([t for t, _ in test])
    y = np.array([y for _, y in test], bool)
    sensitive = set(x["prompt"] for x in pools.sensitive)
    sens_mask = np.array([t in sensitive for t, _ in test])
    result = {
        "train": {"jailbreaks": sum(y for _, y in train), "negatives": sum(1 - y for _, y in train)},
        "test": {"jailbreaks_reddit": int(y.sum()), "negatives": int((~y).sum())},
        "roc_auc": float(roc_auc_score(y, proba)),
        "recall_at_0.5": float(np.mean(proba[y] > 0.5)),
        "fpr_at_0.5": float(np.mean(proba[~y] > 0.5)),
        "fpr_on_forbidden_questions_at_0.5": float(np.mean(proba[sens_mask] > 0.5)) if sens_mask.any() else None,
        "model_bytes": MODEL_PATH.stat().st_size,
    }
    out = ROOT / "benchmarks" / "results"
    (out / "safeguard.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        "# Safeguard-stripping (jailbreak) classifier\n\n`python scripts/train_safeguard_model.py` "
        "(trained on non-Reddit jailbreaks, tested on the Reddit ones and 30% held-out ordinary prompts)\n\n"
        "| test jailbreaks | test negatives | ROC-AUC | recall | FPR | FPR on forbidden questions |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {int(y.sum())} | {int((~y).sum())} | {result['roc_auc']:.4f} | {result['recall_at_0.5']:.3f} "
        f"| {result['fpr_at_0.5']:.4f} | {result['fpr_on_forbidden_questions_at_0.5']:.3f} |\n"
    )
    (out / "safeguard.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
