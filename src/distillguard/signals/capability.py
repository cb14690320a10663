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

import pyarrow as pa

from distillguard.signals.base import Enricher, with_columns

_CODING = re.compile(
    r"```|\bdef \w+\(|\bfunction\b|\bpython\b|\bjavascript\b|\bjava\b|\bsql\b|\bcode\b|"
    r"\bclass \w+|\bcompile|\bbug\b|\bregex\b|\balgorithm\b|\bimplement", re.I)
_MATH = re.compile(
    r"\bhow (many|much)\b|\bcalculate\b|\bsolve\b|\bprove\b|\bequation\b|\bprobability\b|"
    r"\bpercent|\btotal\b|\baverage\b|\d+\s*[-+*/x=]\s*\d+", re.I)
_SAFETY = re.compile(
    r"\bhack|\bweapon|\bdrugs?\b|\bexplosive|\bmalware|\billegal|\bsuicide|\bjailbreak|"
    r"\bDAN\b|\bno restrictions\b|\bignore (all|your|previous)|\bbypass|\bunfiltered", re.I)
_CREATIVE = re.compile(r"\b(poem|story|lyrics|haiku|novel|screenplay|limerick|fiction)\b", re.I)


def area(n_tools: int, n_images: int, text: str) -> str:
    """The capability area of one request."""
    if n_tools:
        return "tool-use"
    if n_images:
        return "vision"
    if _SAFETY.search(text):
        return "safety"
    if _CODING.search(text):
        return "coding"
    if _MATH.search(text):
        return "reasoning"
    if _CREATIVE.search(text):
        return "creative"
    return "chat"


class CapabilityEnricher(Enricher):
    """Adds ``capability`` (one of ``schema.CAPABILITIES``)."""

    name = "capability"
    adds = ("capability",)

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        tools = batch.column("n_tools").to_pylist() if "n_tools" in batch.schema.names else None
        images = batch.column("n_images").to_pylist() if "n_images" in batch.schema.names else None
        texts = batch.column("prompt_text").to_pylist()
        n = len(texts)
        values = [
            area((tools[i] or 0) if tools else 0, (images[i] or 0) if images else 0, texts[i] or "")
            for i in range(n)
        ]
        return with_columns(batch, {"capability": pa.array(values, pa.string())})
