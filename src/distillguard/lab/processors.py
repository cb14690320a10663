"""Logits processors selected per request: how watermarks and sampling defences plug into serving.

A processor is a ``transformers.LogitsProcessor`` (``(input_ids, scores) -> scores``),
so the same object works with Hugging Face ``generate()`` and with the model
server's own decoding loop. Requests name them in ``logits_processors``
(``[{"name": ..., **params}]``): the built-ins below, factories other packages declare as entry points
in ``distillguard.logits_processors``, and those ``register``-ed in this process.

>>> import torch
>>> p = build_processors([{"name": "repetition_penalty", "penalty": 2.0}])
>>> p(torch.tensor([[0]]), torch.tensor([[2.0, 1.0]])).tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

from distillguard import _registry
from distillguard.errors import ConfigError
from distillguard.lab.antidistillation import processor_factory as _antidistillation
from distillguard.watermark.keyring import Keyring

Factory = Callable[..., LogitsProcessor]
# What the server supplies to factories that take it, never the request: the model's vocabulary size, the
# watermark keyring, the antidistillation proxy store, the request's sampling temperature.
_CONTEXT = ("vocab", "keyring", "proxies", "temperature")


def _watermark(version: str, vocab: int, keyring: Keyring | None = None) -> LogitsProcessor:
    """A watermark from the server's keyring, by key version (``--watermark-keys``)."""
    if keyring is None:
        raise ConfigError("this server has no watermark keyring (start it with --watermark-keys FILE)")
    return keyring.scheme(str(version)).processor(vocab)


# Built in: two of transformers' own processors, so requests can use them by name, the watermarks of the
# server's keyring (each scheme's ``processor``), and antidistillation sampling (``lab.antidistillation``).
BUILT_IN: dict[str, Factory] = {
    "repetition_penalty": lambda penalty: RepetitionPenaltyLogitsProcessor(float(penalty)),
    "no_repeat_ngram": lambda ngram_size: NoRepeatNGramLogitsProcessor(int(ngram_size)),
    "watermark": _watermark,
    "antidistillation": _antidistillation,
}


def factories() -> dict[str, Factory]:
    """The built-in factories and those installed as plugins (or ``register``-ed), by name."""
    return _registry.merged(BUILT_IN, _registry.LOGITS_PROCESSORS_GROUP, accepts=callable,
                            what="a logits processor factory")


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make a processor factory selectable by ``name`` in requests, in this process."""

    def wrap(factory: Factory) -> Factory:
        _registry.register(_registry.LOGITS_PROCESSORS_GROUP, name, factory)
        return factory

    return wrap


def available() -> list[str]:
    return sorted(factories())


def build_processors(specs: list[dict[str, Any]] | None, **context: Any) -> LogitsProcessorList:
    """The processors a request asks for, in order; unknown names and bad parameters are ``ConfigError``.

    ``context`` (the model's ``vocab``, the server's watermark ``keyring`` and antidistillation ``proxies``,
    the request's ``temperature``) reaches the factories
    whose signature names it; a request cannot set those itself.
    """
    out = LogitsProcessorList()
    known = factories() if specs else {}
    for spec in specs or []:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError("each logits processor must be an object with a 'name'")
        params = {k: v for k, v in spec.items() if k != "name" and k not in _CONTEXT}
        factory = known.get(spec["name"])
        if factory is None:
            raise ConfigError(f"unknown logits processor {spec['name']!r}; available: {', '.join(sorted(known))}")
        wanted = inspect.signature(factory).parameters
        params.update({k: v for k, v in context.items() if k in wanted})
        try:
            out.append(factory(**params))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"logits processor {spec['name']!r}: {exc}") from exc
    return out
