"""Reasoning-elicitation classifier: held-out phrasings, real prompts, speed.

    python benchmarks/elicitation.py

- held-out: the grammar's held-out verbs, objects and patterns (never in training);
- real prompts: human-written requests from Self-Instruct and MT-Bench / Vicuna
  (shared/data), where a high score is a false positive unless the request itself
  asks for reasoning (the share is reported, not assumed zero);
- speed: microseconds per prompt over those real prompts.
Writes benchmarks/results/elicitation.{json,md}.
"""

from __future__ import annotations

import time

import numpy as np
from _common import machine, write_result
from sklearn.metrics import roc_auc_score

from distillguard.signals.elicitation import _ends, build_model, elicitation_probability
from distillguard.signals.elicitation_phrases import phrasings
from distillguard.sim.datasets import find_data_dir, load_pools


def main() -> None:
    model = build_model(seed=0)
    _, test = phrasings(seed=0)
    proba = model.predict_proba([_ends(t) for t, _ in test])[:, 1]
    labels = np.array([y for _, y in test], bool)
    pools = load_pools(find_data_dir())
    real = [x["prompt"] for x in pools.instructions + pools.chat]
    elicitation_probability(real[:10])  # train and cache before timing
    t0 = time.perf_counter()
    real_p = elicitation_probability(real)
    us = (time.perf_counter() - t0) / len(real) * 1e6
    flagged = [p for p, s in zip(real, real_p, strict=True) if s > 0.5]
    result = {
        **machine(),
        "held_out": {"n": len(test), "roc_auc": float(roc_auc_score(labels, proba)),
                     "accuracy": float(np.mean((proba > 0.5) == labels)),
                     "recall": float(np.mean(proba[labels] > 0.5)), "fpr": float(np.mean(proba[~labels] > 0.5))},
        "real_prompts": {"n": len(real), "share_above_0.5": len(flagged) / len(real), "examples": flagged[:10]},
        "microseconds_per_prompt": round(us, 1),
    }
    h = result["held_out"]
    md = (
        "# Reasoning-elicitation classifier\n\n`python benchmarks/elicitation.py`\n\n"
        "| held-out phrasings | ROC-AUC | accuracy | recall | FPR | real prompts scored > 0.5 | µs / prompt |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {h['n']} | {h['roc_auc']:.4f} | {h['accuracy']:.3f} | {h['recall']:.3f} | {h['fpr']:.3f} "
        f"| {len(flagged)} / {len(real)} | {us:.0f} |\n"
    )
    write_result("elicitation", result, md)


if __name__ == "__main__":
    main()
