"""Reasoning-trace elicitation: does a request ask the model to expose its reasoning?

A real classifier rather than a keyword list: a logistic regression over hashed
word and character n-grams, trained on the labelled phrasings of
``elicitation_phrases`` (compositional, with held-out components for testing).
Elicitation instructions sit at the start or end of a prompt, so the model reads
the prompt's head and tail. Training takes about a second and is cached per
process; the same seed always gives the same model.

>>> p = elicitation_probability(["Explain your chain of thought step by step. Is 7 prime?",
...                              "What is the capital of France?"])
>>> bool(p[0] > 0.5 > p[1])
True
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

import numpy as np
import pyarrow as pa
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from distillguard.signals.base import Enricher, per_distinct, with_columns
from distillguard.signals.elicitation_phrases import phrasings
from distillguard.signals.ngrams import ByteNgramHasher
from distillguard.signals.words import WordNgramHasher

_END_CHARS = 200


def _ends(text: str | None) -> str:
    text = text or ""
    if len(text) <= 2 * _END_CHARS:
        return text
    return text[:_END_CHARS] + " … " + text[-_END_CHARS:]


def build_model(seed: int = 0) -> Pipeline:
    """A fitted pipeline (hashed n-grams → logistic regression) on the training phrasings."""
    train, _ = phrasings(seed)
    # Word 1-2 grams (scikit-learn's HashingVectorizer features, hashed for the whole batch
    # in NumPy) plus byte 4-grams of the space-normalised text (likewise; like scikit-learn's
    # char_wb 4-grams, but windows may span two words): held-out AUC 0.9976 against 0.9978
    # with char_wb, at about half the cost.
    features = FeatureUnion([
        ("words", WordNgramHasher(n_features=2**18)),
        ("chars", ByteNgramHasher(n=4, n_features=2**18)),
    ])
    model = Pipeline([("features", features), ("clf", LogisticRegression(C=4.0, max_iter=2000))])
    model.fit([_ends(t) for t, _ in train], [y for _, y in train])
    return model


@cache
def _model() -> Pipeline:
    return build_model()


def elicitation_probability(prompts: list[str | None]) -> np.ndarray:
    """Probability that each prompt asks for the model's reasoning."""
    if not prompts:
        return np.empty(0)
    proba: np.ndarray = _model().predict_proba([_ends(p) for p in prompts])[:, 1]
    return proba


class ElicitationEnricher(Enricher):
    """Adds ``elicitation``: probability that the request elicits reasoning traces."""

    name = "elicitation"
    columns = MappingProxyType({"elicitation": pa.float64()})  # P(request asks the model to expose its reasoning)
    after = "capability"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        values = per_distinct(batch.column("prompt_text"), elicitation_probability, self.memo)
        return with_columns(batch, {"elicitation": pa.array(values, pa.float64())})
