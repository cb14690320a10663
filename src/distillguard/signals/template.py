"""Prompt template signatures: the prompt with its variable parts masked.

Harvesting campaigns wrap varying content (a problem, a function to write) in
a fixed instruction template with paraphrased variations. Masking numbers,
quoted and code spans, URLs and e-mail addresses, then keeping the system
prompt and the opening and closing words, maps one template to one exact
signature (``template_sig``); a 64-bit SimHash of word shingles of the whole
masked prompt (``template_simhash``) keeps paraphrases nearby in Hamming distance.

>>> mask("Solve: Tom has 12 apples and buys 3.5 more. Reply at x@y.com")
'solve: tom has <num> apples and buys <num> more. reply at <email>'
>>> simhash("a b c d e") == simhash("a b c d e")
True
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Enricher, with_columns

_EDGE_WORDS = 6
_MASKS = [
    (re.compile(r"```.*?(```|$)", re.S), " <code> "),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"), "<email>"),
    (re.compile(r"\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|“[^”\n]{1,200}”"), "<quote>"),
    (re.compile(r"[-+]?\$?\d[\d,]*(\.\d+)?%?"), "<num>"),
]
_SPACE = re.compile(r"\s+")


def mask(text: str) -> str:
    """Lower-cased ``text`` with numbers, quotes, code, URLs and e-mails masked."""
    for pattern, token in _MASKS:
        text = pattern.sub(token, text)
    return _SPACE.sub(" ", text).strip().lower()


def signature(system: str | None, prompt: str | None) -> str:
    """Exact template signature: system prompt plus the prompt's edge words."""
    words = mask(prompt or "").split(" ")
    edges = words if len(words) <= 2 * _EDGE_WORDS else [*words[:_EDGE_WORDS], "…", *words[-_EDGE_WORDS:]]
    key = mask(system or "")[:300] + "\x1f" + " ".join(edges)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def simhash(masked: str, width: int = 3, max_words: int = 64) -> int:
    """64-bit SimHash of word ``width``-shingles of the first ``max_words``, as int64."""
    words = masked.split(" ")[:max_words]
    shingles = [" ".join(words[i : i + width]) for i in range(max(1, len(words) - width + 1))]
    hashes = np.array(
        [int.from_bytes(hashlib.blake2b(sh.encode(), digest_size=8).digest(), "little")
         for sh in shingles], dtype=np.uint64,
    )
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    votes = bits.sum(axis=0, dtype=np.int64) * 2 - len(shingles)
    packed = np.packbits(votes > 0, bitorder="little").view(np.int64)
    return int(packed[0])


class TemplateEnricher(Enricher):
    """Adds ``template_sig`` (hex) and ``template_simhash`` (int64)."""

    name = "template"
    adds = ("template_sig", "template_simhash")

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        systems = batch.column("system_text").to_pylist()
        prompts = batch.column("prompt_text").to_pylist()
        sigs = [signature(s, p) for s, p in zip(systems, prompts, strict=True)]
        hashes = [simhash(mask(p or "")[:4000]) for p in prompts]
        return with_columns(batch, {
            "template_sig": pa.array(sigs, pa.string()),
            "template_simhash": pa.array(hashes, pa.int64()),
        })
