"""Prompt template signatures: the prompt with its variable parts masked.

Harvesting campaigns wrap varying content (a problem, a function to write) in
a fixed instruction template with paraphrased variations. Masking numbers,
quoted and code spans, URLs and e-mail addresses, then keeping the system
prompt and the opening and closing words, maps one template to one exact
signature (``template_sig``); a 64-bit SimHash of word shingles of the whole
masked prompt (``template_simhash``) keeps paraphrases nearby in Hamming distance;
the hash of its first eight masked words (``template_head``) is the instruction
alone, shared by a campaign that rotates a few instructions over varied content, and
the hash of its last eight (``template_tail``) the instruction appended after the
content ("... Show every step of your reasoning."). Words are whitespace-separated,
but each CJK character counts as one: Chinese and Japanese leave no spaces between
words, so an instruction in them would otherwise be one long "word" run into the content.

>>> mask("Solve: Tom has 12 apples and buys 3.5 more. Reply at x@y.com")
'solve: tom has <num> apples and buys <num> more. reply at <email>'
>>> simhash("a b c d e") == simhash("a b c d e")
True
>>> tokens("please answer: 请逐步解释。")
['please', 'answer:', '请', '逐', '步', '解', '释', '。']
"""

from __future__ import annotations

import hashlib
import itertools
import re
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from distillguard.signals.base import Enricher, column, per_distinct, with_columns

_EDGE_WORDS = 6
_END_CHARS = 1500
# (pattern, token, characters one of which any match holds): a text without them is left
# alone without running the pattern, most of the cost for the e-mail pattern, which has
# no fixed start. The number pattern's lookahead lets the engine skip to where a match can start.
_MASKS = [
    (re.compile(r"```.*?(```|$)", re.S), " <code> ", ("```",)),
    (re.compile(r"https?://\S+"), "<url>", ("http",)),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"), "<email>", ("@",)),
    (re.compile(r"\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|“[^”\n]{1,200}”"), "<quote>", ('"', "'", "“")),
    (re.compile(r"(?=[-+$\d])[-+]?\$?\d[\d,]*(\.\d+)?%?"), "<num>", ()),
]


def mask(text: str) -> str:
    """Lower-cased ``text`` with numbers, quotes, code, URLs and e-mails masked."""
    for pattern, token, needs in _MASKS:
        if not needs or any(n in text for n in needs):
            text = pattern.sub(token, text)
    # str.split() splits at runs of the characters \s matches (str.isspace), dropping those at the ends.
    return " ".join(text.split()).lower()


# Hiragana, katakana, CJK ideographs (and extension A), Hangul syllables, CJK and full-width punctuation.
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_CJK_TOKEN = re.compile(_CJK.pattern + r"|[^\s\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
                        r"\uff00-\uffef]+")


def tokens(masked: str) -> list[str]:
    """The words of a masked text, each CJK character one word (see the module's docstring)."""
    words = masked.split(" ")
    if not _CJK.search(masked):
        return words
    return [t for w in words for t in (_CJK_TOKEN.findall(w) if _CJK.search(w) else (w,))]


def _masked_ends(prompt: str | None) -> tuple[list[str], str, str]:
    """The prompt's edge words, its masked head and its masked end.

    Only the ends matter (the edge words, the SimHash's first words, the opening and
    closing instructions), so long prompts are masked at each end instead of whole.
    """
    text = prompt or ""
    head = mask(text[:_END_CHARS])
    words = head.split(" ")
    if len(text) > _END_CHARS:
        cut = len(text) - _END_CHARS
        # Cut inside a code block, the end's first fence is a closing one: reopen it, or masking would
        # read it as an opening fence and swallow what follows the code (the closing instruction).
        inside = text.count("```", 0, cut) % 2 == 1 and "```" not in text[cut - 2: cut + 3]
        end = mask(("```" if inside else "") + text[cut:])
        return [*words[:_EDGE_WORDS], "…", *end.split(" ")[-_EDGE_WORDS:]], head, end
    if len(words) > 2 * _EDGE_WORDS:
        return [*words[:_EDGE_WORDS], "…", *words[-_EDGE_WORDS:]], head, head
    return words, head, head


@lru_cache(maxsize=8192)
def _masked_system(system: str) -> str:
    # System prompts repeat across an application's traffic: mask each once.
    return mask(system[:600])[:300]


def _signature(system: str | None, edges: list[str]) -> str:
    key = _masked_system(system or "") + "\x1f" + " ".join(edges)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


_HEAD_WORDS = 8


def _hash_words(words: list[str]) -> str:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=8).hexdigest()


def signature(system: str | None, prompt: str | None) -> str:
    """Exact template signature: system prompt plus the prompt's edge words."""
    return _signature(system, _masked_ends(prompt)[0])


def instruction_hashes(prompt: str | None) -> tuple[str, str]:
    """``template_head`` and ``template_tail`` of one prompt: hashes of its first and last eight masked words.

    >>> a = instruction_hashes("Tom has 3 apples. Show every step of your reasoning, then answer.")
    >>> b = instruction_hashes("A train leaves at 9. Show every step of your reasoning, then answer.")
    >>> a[1] == b[1], a[0] == b[0]
    (True, False)
    """
    _, head, end = _masked_ends(prompt)
    return _instructions(head, end)


def _instructions(head: str, end: str) -> tuple[str, str]:
    # Every space-separated word gives at least one token: the first (last) eight words hold the first
    # (last) eight tokens, so only they are tokenized (a CJK prompt's 1,500 characters would cost 5x more).
    first = tokens(" ".join(head.split(" ", _HEAD_WORDS)[:_HEAD_WORDS]))[:_HEAD_WORDS]
    last = tokens(" ".join(end.rsplit(" ", _HEAD_WORDS)[-_HEAD_WORDS:]))[-_HEAD_WORDS:]
    return _hash_words(first), _hash_words(last)


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: spreads the bits of combined word hashes."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


_WORD_HASHES: dict[str, int] = {}  # word → its 64-bit blake2b, for every batch of this process
_MAX_WORD_HASHES = 300_000


def simhash_many(texts: list[str], max_words: int = 64, width: int = 3) -> np.ndarray:
    """64-bit SimHash (as int64) of word ``width``-shingles of each text's first ``max_words``.

    Word hashes (blake2b) are computed once per distinct word and kept across
    batches (``_WORD_HASHES``); shingle hashes combine them arithmetically and
    the bit votes are counted for the whole batch at once in NumPy, so the cost
    per text is a few microseconds.
    """
    if not len(texts):
        return np.empty(0, dtype=np.int64)
    split = [text.split(" ")[:max_words] for text in texts]
    split = [w if len(w) >= width else w + [""] * (width - len(w)) for w in split]  # short: one padded shingle
    lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
    flat = list(itertools.chain.from_iterable(split))
    known = _WORD_HASHES
    if len(known) > _MAX_WORD_HASHES:
        known.clear()  # rarely: cheaper than tracking age, and refilled from the next batches
    for w in set(flat).difference(known):
        known[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    h = np.fromiter(map(known.__getitem__, flat), dtype=np.uint64, count=len(flat))
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        mixed = sum(h[j: len(h) - width + 1 + j] * _MIX[j] for j in range(width))
        shingles = _splitmix(np.asarray(mixed, dtype=np.uint64))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    # shingle k of text t starts at word starts[t] + k, for k <= lengths[t] - width
    valid = np.zeros(len(shingles), dtype=bool)
    counts = lengths - (width - 1)
    idx = np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    valid[idx] = True
    kept = shingles[valid]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    votes = np.empty((len(texts), 64), dtype=np.int64)
    for bit in range(64):  # 1-D reductions per bit are far faster than one 2-D reduceat
        votes[:, bit] = np.add.reduceat(((kept >> np.uint64(bit)) & np.uint64(1)).astype(np.int64), offsets)
    signed = votes * 2 - counts[:, None]
    return np.packbits(signed > 0, axis=1, bitorder="little").view(np.int64).ravel()


def simhash(masked: str, max_words: int = 64) -> int:
    """SimHash of one masked text (see ``simhash_many``)."""
    return int(simhash_many([masked], max_words)[0])


class TemplateEnricher(Enricher):
    """Adds ``template_sig`` (hex), ``template_simhash`` (int64), ``template_head`` and ``template_tail`` (hex)."""

    name = "template"
    columns = MappingProxyType({
        "template_sig": pa.string(),  # exact hash of the masked prompt
        "template_simhash": pa.int64(),  # 64-bit SimHash of masked shingles
        "template_head": pa.string(),  # hash of the masked prompt's first eight words
        "template_tail": pa.string(),  # hash of its last eight words
    })
    after = "prompt_chars"

    def enrich(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keys = [column(batch, "system_text", pa.string()), batch.column("prompt_text")]
        values = per_distinct(keys, template_columns, self.memo)
        return with_columns(batch, {
            "template_sig": pa.array(values["sig"], pa.string()),
            "template_simhash": pa.array(values["simhash"], pa.int64()),
            "template_head": pa.array(values["head"], pa.string()),
            "template_tail": pa.array(values["tail"], pa.string()),
        })


_COLUMNS = np.dtype([("sig", "U16"), ("simhash", "i8"), ("head", "U16"), ("tail", "U16")])


def template_columns(pairs: list[tuple[str | None, str | None]]) -> np.ndarray:
    """Signature, SimHash, head and tail hashes of each (system, prompt) pair, as one record array."""
    sigs, heads, openings, closings = [], [], [], []
    for system, prompt in pairs:
        edges, head, end = _masked_ends(prompt)
        sigs.append(_signature(system, edges))
        heads.append(head)
        opening, closing = _instructions(head, end)
        openings.append(opening)
        closings.append(closing)
    out = np.empty(len(pairs), dtype=_COLUMNS)
    out["sig"], out["simhash"], out["head"], out["tail"] = sigs, simhash_many(heads), openings, closings
    return out
