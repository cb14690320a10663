"""Prompt variety (opt-in): simulated prompts as distinct as real traffic's.

By default each prompt is a real dataset prompt as it stands, and the pools
hold a few thousand of them, so ten million exchanges repeat a hundred thousand
prompts (about 1% distinct). Real traffic is mostly distinct: people ask
about their own numbers and names, and harvesters vary their tasks by design.
With ``Scenario.prompt_variety`` set to ``p``, each prompt drawn from a pool
is, with probability ``p``, varied the way people vary one task: every number
redrawn with as many digits, each proper noun the datasets know (mostly people's
names) swapped for another, and now and then (always where nothing else changed) a short remark
about the asker's situation. Only the pool prompt changes, never the
instruction a style wraps it in, so a campaign's template stays its template.
Evaluation sweeps and a classroom's shared assignment stay as they are: they
repeat by nature.

>>> names = ("Natalia", "Weng")
>>> vary("Natalia sold 48 clips in April.", random.Random(1), names=names)
'Weng sold 82 clips in April.'
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from typing import Any, overload

from distillguard.sim.datasets import Pools

FIXED_STYLES = frozenset({"eval-harness", "classroom"})
"""Styles whose prompts repeat by nature (benchmark sweeps, one assignment per class): never varied."""

_NUMBER = re.compile(r"\d+")
_CAPITALIZED = re.compile(r"\b[A-Z][a-z]{2,}\b")
_MID_SENTENCE = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}\b")
_NOT_NAMES = frozenset({
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February",
    "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    "The", "This", "That", "Then", "What", "How", "Mrs", "Mr", "Dr", "Ms",
})
_REMARKS = (
    "Thanks in advance!", "I need this by {n} pm today.", "Please keep it under {n} words.",
    "This is for a report I'm writing for {name}.", "My team of {n} is stuck on this.",
    "Asking for my {n}-year-old.", "I've been trying this for {n} minutes now.", "(Attempt {n}.)",
    "{name} said you could help with this.", "Context: ticket #{n} in our tracker.",
)


def proper_nouns(pools: Pools, min_count: int = 3) -> tuple[str, ...]:
    """Proper nouns of the math word problems (mostly people's names, some places and brands):
    capitalized mid-sentence, never lower-cased, recurring.

    >>> from distillguard.sim.datasets import find_data_dir, load_pools
    >>> names = proper_nouns(load_pools(find_data_dir()))
    >>> len(names) > 500, "Natalia" in names
    (True, True)
    """
    texts = [item["prompt"] for item in pools.math]
    seen = Counter(w for t in texts for w in _MID_SENTENCE.findall(t))
    lower = {w for t in texts for w in re.findall(r"\b[a-z]{3,}\b", t)}
    return tuple(sorted(w for w, c in seen.items()
                        if c >= min_count and w.lower() not in lower and w not in _NOT_NAMES))


def vary(text: str, rng: random.Random, *, names: Sequence[str], remark_rate: float = 0.25) -> str:
    """``text`` with its numbers redrawn, its names swapped and maybe a remark added (see the module)."""
    known = frozenset(names)
    swapped: dict[str, str] = {}

    def name(m: re.Match[str]) -> str:
        word = m.group(0)
        if word not in known:
            return word
        if word not in swapped:
            k = rng.randrange(len(names) - 1) if len(names) > 1 else 0
            swapped[word] = names[k + 1] if names[k] == word else names[k]  # another name, never itself
        return swapped[word]

    def number(m: re.Match[str]) -> str:
        digits = len(m.group(0))
        low = 10 ** (digits - 1) if digits > 1 else 0
        return str(rng.randrange(low, 10 ** digits))

    out = _NUMBER.sub(number, _CAPITALIZED.sub(name, text)) if names else _NUMBER.sub(number, text)
    if out == text or rng.random() < remark_rate:
        remark = _REMARKS[rng.randrange(len(_REMARKS))]
        out = f"{out}\n\n{remark.format(n=rng.randrange(2, 100), name=names[rng.randrange(len(names))])}"
    return out


class _VariedPool(Sequence[dict[str, Any]]):
    """A pool whose items come out varied (their ``prompt``, and ``output`` where set)."""

    def __init__(self, pool: Sequence[dict[str, Any]], rng: random.Random, rate: float,
                 names: Sequence[str]) -> None:
        self.pool, self.rng, self.rate, self.names = pool, rng, rate, names

    def __len__(self) -> int:
        return len(self.pool)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        item = self.pool[i]
        if self.rng.random() >= self.rate:
            return item
        changed = {k: vary(item[k], self.rng, names=self.names) for k in ("prompt", "output") if item.get(k)}
        return {**item, **changed}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[k] for k in range(len(self)))


def varied_pools(pools: Pools, rng: random.Random, *, rate: float, names: Sequence[str]) -> Pools:
    """``pools`` whose items are varied with probability ``rate``, drawing from ``rng``."""
    return replace(pools, **{f.name: _VariedPool(getattr(pools, f.name), rng, rate, names) for f in fields(pools)})
