"""Harvest formatting: requests shaped for building a training set rather than for use.

Dataset builders ask for several samples per prompt (``n > 1``), the largest
output budget, machine-readable answer-plus-rationale records and "respond only
with" formats. Each cue is weak alone (developers ask for JSON too); the account
features count how consistently an account's traffic carries them.

>>> harvest_cues("Return a JSON object with keys answer and rationale. Q: 2+2?", n_choices=1, max_tokens=512)
1.0
>>> harvest_cues("What's a good pasta recipe?", n_choices=1, max_tokens=512)
0.0
>>> harvest_cues("What's a good pasta recipe?", n_choices=4, max_tokens=512)
1.0
"""

from __future__ import annotations

import re
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Enricher, column, per_distinct, with_columns

MAX_TOKENS_HIGH = 4096
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


def harvest_cues(prompt: str | None, *, n_choices: int | None, max_tokens: int | None,
                 request_format: str | None = None) -> float:
    """1.0 when the request carries a dataset-building cue, else 0.0.

    A large output budget counts only where it is a choice: Anthropic Messages requires
    ``max_tokens`` and its clients routinely send 4,096 or more.

    >>> harvest_cues("Hi", n_choices=1, max_tokens=8192), harvest_cues("Hi", n_choices=1, max_tokens=8192,
    ...              request_format="anthropic")
    (1.0, 0.0)
    """
    budget = (max_tokens or 0) >= MAX_TOKENS_HIGH and request_format != "anthropic"
    if (n_choices or 1) > 1 or budget:
        return 1.0
    text = prompt or ""
    ends = (text if len(text) <= 2 * _ENDS else text[:_ENDS] + "\n" + text[-_ENDS:]).lower()
    if any(p in ends for p in _PHRASES):
        return 1.0
    return 1.0 if any(w in ends for w in _RECORD_WORDS) and _RECORD.search(ends) else 0.0


class HarvestFormatEnricher(Enricher):
    """Adds ``harvest_format`` (1.0 when a dataset-building cue is present)."""

    name = "harvest"
    # 1.0: n > 1, maximal max_tokens or a dataset-format cue
    columns = MappingProxyType({"harvest_format": pa.float64()})
    after = "temperature"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keys = [batch.column("prompt_text"), column(batch, "n_choices"), column(batch, "max_tokens"),
                column(batch, "request_format")]
        values = per_distinct(keys, lambda ks: np.array([harvest_cues(p, n_choices=n, max_tokens=m, request_format=f)
                                                         for p, n, m, f in ks], dtype=np.float64),
                              self.memo)
        return with_columns(batch, {"harvest_format": pa.array(values, pa.float64())})
