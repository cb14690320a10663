"""Capability area of an exchange, from request structure and wording.

A transparent baseline: structure first (tool definitions, image parts), then
wording cues for coding, math/reasoning, safety-sensitive topics and creative
writing; everything else is general chat. The detection issue replaces the
wording part with a trained classifier; the column contract stays.

>>> area(n_tools=0, n_images=0, text="Write a Python function to reverse a list.")
'coding'
>>> area(n_tools=2, n_images=0, text="What's the weather?")
'tool-use'
>>> area(n_tools=0, n_images=0, text="If 3 apples cost $6, how much do 7 cost?")
'reasoning'
"""

from __future__ import annotations

import re
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.signals.base import Enricher, column, per_distinct, with_columns

# Keyword sets rather than one big case-insensitive regex: a set lookup per word
# is several times faster on long prompts, and the lists stay readable.
_SAFETY_WORDS = frozenset({
    "hack", "hacking", "hacked", "hacker", "weapon", "weapons", "drug", "drugs", "explosive",
    "explosives", "malware", "ransomware", "illegal", "suicide", "jailbreak", "jailbroken",
    "unfiltered", "uncensored", "bypass", "counterfeit", "poison",
})
_SAFETY_PHRASES = ("no restrictions", "ignore all", "ignore your", "ignore previous", "developer mode")
_CODING_WORDS = frozenset({
    "function", "python", "javascript", "java", "sql", "code", "bug", "regex", "algorithm",
    "implement", "compile", "compiler", "typescript", "rust", "golang", "debug", "refactor",
})
_CODING_PHRASES = ("```", "def ", "class ", "();", "=>")
_MATH_WORDS = frozenset({
    "calculate", "solve", "prove", "equation", "probability", "percent", "percentage", "total",
    "average", "sum", "product", "integral", "derivative",
})
_MATH_PHRASES = ("how many", "how much")
_ARITHMETIC = re.compile(r"\d\s*[-+*/x=]\s*\d")
_CREATIVE_WORDS = frozenset({"poem", "story", "lyrics", "haiku", "novel", "screenplay", "limerick", "fiction"})
_WORD = re.compile(r"[a-z]+")
_SCAN_CHARS = 2000


def area(n_tools: int, n_images: int, text: str) -> str:
    """The capability area of one request."""
    if n_tools:
        return "tool-use"
    if n_images:
        return "vision"
    lower = text[:_SCAN_CHARS].lower()
    words = set(_WORD.findall(lower))
    if words & _SAFETY_WORDS or any(p in lower for p in _SAFETY_PHRASES):
        return "safety"
    if words & _CODING_WORDS or any(p in lower for p in _CODING_PHRASES):
        return "coding"
    if words & _MATH_WORDS or any(p in lower for p in _MATH_PHRASES) or _ARITHMETIC.search(lower):
        return "reasoning"
    if words & _CREATIVE_WORDS:
        return "creative"
    return "chat"


class CapabilityEnricher(Enricher):
    """Adds ``capability`` (one of ``schema.CAPABILITIES``)."""

    name = "capability"
    columns = MappingProxyType({"capability": pa.string()})  # one of schema.CAPABILITIES
    after = "topic_simhash"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        # The cues sit in the opening of a request; long pastes add cost, not signal.
        texts = pc.utf8_slice_codeunits(batch.column("prompt_text"), 0, _SCAN_CHARS)
        keys = [column(batch, "n_tools"), column(batch, "n_images"), texts]
        values = per_distinct(keys, lambda ks: np.array([area(t or 0, i or 0, x or "") for t, i, x in ks],
                                                         dtype=object), self.memo)
        return with_columns(batch, {"capability": pa.array(values, pa.string())})
