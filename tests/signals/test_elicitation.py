"""The reasoning-elicitation classifier, measured on phrasings kept out of training."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from distillguard.signals.elicitation import _ends, build_model, elicitation_probability
from distillguard.signals.elicitation_phrases import OBJECTS, VERBS, phrasings


def test_held_out_phrasings_are_separated() -> None:
    _, test = phrasings(seed=0)
    proba = build_model(seed=0).predict_proba([_ends(t) for t, _ in test])[:, 1]
    labels = [y for _, y in test]
    assert roc_auc_score(labels, proba) > 0.97
    assert np.mean((proba > 0.5) == np.array(labels, bool)) > 0.9


def test_held_out_components_never_appear_in_training_positives() -> None:
    train, _ = phrasings(seed=0)
    text = " ".join(t.lower() for t, y in train if y)
    for held_out in (*VERBS[1], *OBJECTS[1]):
        assert held_out.lower() not in text, held_out


def test_near_misses_and_long_prompts() -> None:
    p = elicitation_probability([
        "Give me a step-by-step recipe for lasagna.",
        "Explain what a neutron star is.",
        "x " * 5000 + "Now explain your reasoning step by step before you answer.",
        None,
    ])
    assert p[0] < 0.5 and p[1] < 0.5
    assert p[2] > 0.5
    assert 0.0 <= p[3] <= 1.0


def test_deterministic() -> None:
    a = build_model(seed=0).predict_proba(["Show all of your work."])
    b = build_model(seed=0).predict_proba(["Show all of your work."])
    assert np.array_equal(a, b)
