"""Logits processors selected per request: how watermarks and sampling defences plug into serving.

A processor is a ``transformers.LogitsProcessor`` (``(input_ids, scores) -> scores``),
so the same object works with Hugging Face ``generate()`` and with the model
server's own decoding loop. Requests name them in ``logits_processors``
(``[{"name": ..., **params}]``); a module registers a factory with ``register``.

>>> import torch
>>> p = build_processors([{"name": "repetition_penalty", "penalty": 2.0}])
>>> p(torch.tensor([[0]]), torch.tensor([[2.0, 1.0]])).tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

from distillguard.errors import ConfigError

Factory = Callable[..., LogitsProcessor]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make a processor factory selectable by ``name`` in requests."""

    def wrap(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def build_processors(specs: list[dict[str, Any]] | None) -> LogitsProcessorList:
    """The processors a request asks for, in order; unknown names and bad parameters are ``ConfigError``."""
    out = LogitsProcessorList()
    for spec in specs or []:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError("each logits processor must be an object with a 'name'")
        params = {k: v for k, v in spec.items() if k != "name"}
        factory = _REGISTRY.get(spec["name"])
        if factory is None:
            raise ConfigError(f"unknown logits processor {spec['name']!r}; available: {', '.join(available())}")
        try:
            out.append(factory(**params))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"logits processor {spec['name']!r}: {exc}") from exc
    return out


# Built in: two of transformers' own processors, so requests can use them by name. The watermark
# schemes (``distillguard.watermark``) register theirs the same way.
register("repetition_penalty")(lambda penalty: RepetitionPenaltyLogitsProcessor(float(penalty)))
register("no_repeat_ngram")(lambda ngram_size: NoRepeatNGramLogitsProcessor(int(ngram_size)))
