"""Topic signature: what a prompt is about, as 64 bits comparable across prompts.

A SimHash of the prompt's content words (letters only, four or more, minus
stop words) is a random-hyperplane projection of its bag of words: two
prompts on the same subject agree on more bits than two unrelated ones
(Charikar 2002). Unlike the template signature, variable content counts and
wording does not: it is the per-exchange input of the account-level topic
statistics (``detect.mmd``), which ask whether an account's prompts come from
the same distribution as benign traffic and how tightly they cluster.

>>> a, b = topic_simhash_many(["Prove that the sum of two even integers is even",
...                            "Prove that the product of two even integers is even"])
>>> bin((int(a) ^ int(b)) & (2**64 - 1)).count("1") < 24
True
"""

from __future__ import annotations

import re
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Enricher, per_distinct, with_columns
from distillguard.signals.template import simhash_many

_WORD = re.compile(r"[a-z]{4,}")
_SCAN_CHARS = 2000
_MAX_WORDS = 128
_STOP_WORDS = """
about above after again against also because been before being below between both could does doing down
during each either else even ever every from further have having here hers herself himself into itself just
like made make many more most much must myself need only other ought ours ourselves over same shall should
some such than that their theirs them themselves then there these they this those through under until upon
very want were what when where which while whom will with within without would your yours yourself please
give tell know using used following answer question write provide explain
"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str | None) -> str:
    """The prompt's content words, space-separated, in order (lower case)."""
    words = [w for w in _WORD.findall((text or "")[:_SCAN_CHARS].lower()) if w not in _STOP]
    return " ".join(words[:_MAX_WORDS])


def topic_simhash_many(prompts: list[str | None]) -> np.ndarray:
    """64-bit topic SimHash (int64) of each prompt's content words."""
    return simhash_many([content_words(p) for p in prompts], max_words=_MAX_WORDS, width=1)


class TopicEnricher(Enricher):
    """Adds ``topic_simhash`` (int64): SimHash of the prompt's content words."""

    name = "topic"
    columns = MappingProxyType({"topic_simhash": pa.int64()})  # 64-bit SimHash of the prompt's content words
    after = "template_tail"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        values = per_distinct(batch.column("prompt_text"), topic_simhash_many, self.memo)
        return with_columns(batch, {"topic_simhash": pa.array(values, pa.int64())})
