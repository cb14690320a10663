"""Harvest formatting: requests shaped for building a training set rather than for use.

Dataset builders ask for several samples per prompt (``n > 1``), machine-readable
answer-plus-rationale records and "respond only with" formats. Each cue is weak
alone (developers ask for JSON too); the account features count how consistently
an account's traffic carries them.

A large output budget (``max_tokens``) is no cue: clients set it by default. Coding
agents send 8,192 on every turn, Anthropic Messages requires it and its clients send
4,096 or more, reasoning models need it. Counting it made an office of developers on one
company card a campaign "98% shaped for dataset building" (traffic from a generator
written apart from the simulator, ``benchmarks/independent_traffic.py`` seed 4).

>>> harvest_cues("Return a JSON object with keys answer and rationale. Q: 2+2?", n_choices=1)
1.0
>>> harvest_cues("What's a good pasta recipe?", n_choices=1)
0.0
>>> harvest_cues("What's a good pasta recipe?", n_choices=4)
1.0
"""

from __future__ import annotations

import re
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Enricher, column, per_distinct, with_columns

_ENDS = 300
# Literal phrases are checked with ``in`` on the lower-cased ends (fast); the record
# patterns need a regex, tried only when a record word occurs at all.
_PHRASES = (
    "respond only with", "reply only with", "output only", "return only", "only output",
    "in the following format", "use this exact format", "for a dataset", "for our dataset",
    "for the dataset", "for a training set", "as training data", "one example per line",
)
_RECORD_WORDS = ("json", "yaml", "rationale", "justification")
_RECORD = re.compile(
    r"(json|yaml) (object|record|format)[^.]{0,60}\b(answer|rationale|reasoning|explanation|label)|"
    r"\b(answer|label)\b[^.]{0,40}\b(rationale|reasoning|explanation|justification)\b[^.]{0,40}\b(json|field|key)"
)


def harvest_cues(prompt: str | None, *, n_choices: int | None) -> float:
    """1.0 when the request carries a dataset-building cue, else 0.0."""
    if (n_choices or 1) > 1:
        return 1.0
    text = prompt or ""
    ends = (text if len(text) <= 2 * _ENDS else text[:_ENDS] + "\n" + text[-_ENDS:]).lower()
    if any(p in ends for p in _PHRASES):
        return 1.0
    return 1.0 if any(w in ends for w in _RECORD_WORDS) and _RECORD.search(ends) else 0.0


class HarvestFormatEnricher(Enricher):
    """Adds ``harvest_format`` (1.0 when a dataset-building cue is present)."""

    name = "harvest"
    # 1.0: n > 1 or a dataset-format cue
    columns = MappingProxyType({"harvest_format": pa.float64()})
    after = "temperature"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keys = [batch.column("prompt_text"), column(batch, "n_choices")]
        values = per_distinct(keys, lambda ks: np.array([harvest_cues(p, n_choices=n) for p, n in ks],
                                                        dtype=np.float64), self.memo)
        return with_columns(batch, {"harvest_format": pa.array(values, pa.float64())})
