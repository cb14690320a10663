"""Detection metrics on plain arrays, independent of file formats.

>>> flag_rates([True, True, False, False], [True, False, True, False])
{'precision': 0.5, 'recall': 0.5, 'fpr': 0.5, 'tp': 1, 'fp': 1, 'fn': 1, 'tn': 1}
>>> campaign_recall({"c1": [True, True, False], "c2": [False, False, True]})
{'detected': 1, 'campaigns': 2, 'recall': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score, average_precision_score, roc_auc_score


def ranking(is_attack: Sequence[bool], score: Sequence[float]) -> dict[str, float | None]:
    """ROC-AUC and PR-AUC (average precision); None when one class is absent."""
    y, s = np.asarray(is_attack, bool), np.asarray(score, float)
    if y.all() or not y.any():
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(y, s)), "pr_auc": float(average_precision_score(y, s))}


def flag_rates(is_attack: Sequence[bool], flagged: Sequence[bool]) -> dict[str, float | int | None]:
    """Precision, recall and false-positive rate of ``flagged`` (None where undefined)."""
    y, f = np.asarray(is_attack, bool), np.asarray(flagged, bool)
    tp, fp = int((y & f).sum()), int((~y & f).sum())
    fn, tn = int((y & ~f).sum()), int((~y & ~f).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "fpr": fp / (fp + tn) if fp + tn else None,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def campaign_recall(flags_by_campaign: dict[str, list[bool]]) -> dict[str, float | int | None]:
    """A campaign is detected when at least half of its accounts are flagged."""
    detected = sum(1 for f in flags_by_campaign.values() if f and sum(f) >= len(f) / 2)
    n = len(flags_by_campaign)
    return {"detected": detected, "campaigns": n, "recall": detected / n if n else None}


def weighted_catch(weights: Sequence[float], flagged: Sequence[bool]) -> float | None:
    """Share of the total weight (exchanges) that belongs to flagged accounts."""
    w, f = np.asarray(weights, float), np.asarray(flagged, bool)
    return float(w[f].sum() / w.sum()) if w.sum() > 0 else None


def cluster_agreement(truth: Sequence[str], clusters: Sequence[str | None]) -> float | None:
    """Adjusted Rand index; unclustered accounts count as singletons.

    >>> cluster_agreement(["a", "a", "b", "b"], ["x", "x", "y", "y"])
    1.0
    >>> cluster_agreement(["a", "a", "b", "b"], [None, None, None, None])
    0.0
    """
    if len(truth) < 2:
        return None
    labels = [c if c is not None else f"__single_{i}" for i, c in enumerate(clusters)]
    return float(adjusted_rand_score(list(truth), labels))
