"""What every watermark scheme provides, finding schemes by name, and reading keys.

A scheme is one file in this package (or, from another package, an entry point
in ``distillguard.watermark_schemes``): a frozen dataclass subclassing ``Scheme``,
of its key and parameters (with a ``version`` recorded wherever the key is used), a
``processor(vocab)`` that is a ``transformers.LogitsProcessor`` (so Hugging Face
``generate()`` and the lab model server both embed with it), and
``detect(token_ids, vocab, prompt_ids)`` returning a ``TestResult`` with an exact
p-value. Detection scores each (context, token) pair once and skips pairs that
occur in the prompt, so repeated or copied text cannot inflate the evidence.

>>> scheme = load_scheme("greenlist", '{"key": 7, "version": "2026-11"}')
>>> scheme.name, scheme.version, scheme.gamma
('greenlist', '2026-11', 0.25)
"""

from __future__ import annotations

import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from transformers import LogitsProcessor

from distillguard import _registry
from distillguard.errors import ConfigError, InputError
from distillguard.stats import TestResult

S = TypeVar("S", bound="type[Scheme]")


class Scheme(ABC):
    """A watermark scheme: its key and parameters, an embedding processor and exact detection."""

    name: str
    version: str

    @property
    @abstractmethod
    def context_width(self) -> int:
        """Tokens of context a (context, token) pair has."""

    @abstractmethod
    def processor(self, vocab: int) -> LogitsProcessor:
        """The ``transformers.LogitsProcessor`` that embeds this watermark."""

    @abstractmethod
    def detect(self, token_ids: Sequence[int], vocab: int, *, prompt_ids: Sequence[int] = (),
               keep: Sequence[bool] | None = None) -> TestResult:
        """The exact test of one text's tokens (pairs the prompt has are skipped)."""

    @abstractmethod
    def detect_pairs(self, pairs: Sequence[tuple[tuple[int, ...], int]], vocab: int) -> TestResult:
        """The exact test on distinct (context, token) pairs."""


def schemes() -> dict[str, type[Scheme]]:
    """Every scheme of this package or installed as a plugin, by name (CLI, key files, the model server)."""
    package = sys.modules[__name__.rpartition(".")[0]]
    found = _registry.discover(package, Scheme, _registry.WATERMARK_SCHEMES_GROUP)  # type: ignore[type-abstract]
    return {str(cls.name): cls for cls in found}


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a ``Scheme`` subclass defined outside this package available in this process."""

    def wrap(cls: S) -> S:
        _registry.register(_registry.WATERMARK_SCHEMES_GROUP, name, cls)
        return cls

    return wrap


def load_scheme(name: str, key: str | Path | dict[str, Any]) -> Scheme:
    """A scheme from its name and key: a dict, a JSON object, a path to one, or a bare integer key."""
    found = schemes()
    if name not in found:
        raise ConfigError(f"unknown watermark scheme {name!r}; choose from {', '.join(sorted(found))}")
    params = _key_params(key)
    params.pop("scheme", None)
    try:
        return found[name](**params)
    except TypeError as exc:
        raise ConfigError(f"watermark key for {name!r}: {exc}") from exc


def _key_params(key: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(key, dict):
        return dict(key)
    text = str(key).strip()
    if text.lstrip("-").isdigit():
        return {"key": int(text)}
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise ConfigError(f"watermark key {key!r} is neither an integer, a JSON object nor a readable file") \
                from exc
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"watermark key {key!r} is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError("a watermark key file holds one JSON object")
    return params


def pairs(token_ids: Sequence[int], width: int, *, prompt_ids: Sequence[int] = (),
          keep: Sequence[bool] | None = None) -> Iterator[tuple[tuple[int, ...], int]]:
    """Each distinct (context of ``width`` tokens, token) pair of the text, in order, none that the prompt has.

    ``keep`` (one flag per token) limits scoring to chosen positions, e.g. where the provider's model had
    a real choice (``selective.keep_uncertain``); a choice made without the key leaves the test exact.

    >>> list(pairs([1, 2, 3, 4], 1, keep=[False, True, False, True]))
    [((1,), 2), ((3,), 4)]
    """
    if keep is not None and len(keep) != len(token_ids):
        raise ValueError(f"keep has {len(keep)} flags for {len(token_ids)} tokens")
    prompt = {(tuple(prompt_ids[i - width:i]), int(prompt_ids[i])) for i in range(width, len(prompt_ids))}
    seen: set[tuple[tuple[int, ...], int]] = set()
    for t in range(width, len(token_ids)):
        if keep is not None and not keep[t]:
            continue
        pair = (tuple(int(x) for x in token_ids[t - width:t]), int(token_ids[t]))
        if pair not in seen and pair not in prompt:
            seen.add(pair)
            yield pair


def read_texts(path: Path) -> list[dict[str, Any]]:
    """Texts to test, JSONL ``{"text": ..., "prompt": ...}`` (prompt optional); ``InputError`` names a bad line."""
    rows = []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
                rows.append({"text": str(row["text"]), "prompt": row.get("prompt")})
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f'{path}:{n}: expected {{"text": ..., "prompt": ...}} ({exc})') from exc
    return rows


def model_vocab(directory: Path | None, tokenizer: Any) -> int:
    """The model's vocabulary size: ``config.json`` of ``directory`` when it has one, else the tokenizer's length."""
    config = directory / "config.json" if directory else None
    if config is not None and config.is_file():
        return int(json.loads(config.read_text()).get("vocab_size") or len(tokenizer))
    return len(tokenizer)
