"""Held-out accuracy of a lab model: batched greedy decoding (``models.answers``), checked answer by answer.

``answers_with`` and ``scores_with`` decode with logits processors on (a defence applied to everyone: what an
honest user then gets), through the same batching as the model server, antidistillation proxies included.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from distillguard.lab.antidistillation import Prefetch
from distillguard.lab.processors import build_processors
from distillguard.lab.tasks import Task
from distillguard.models.answers import Progress, answers
from distillguard.models.generate import Channels, Model, Row, Sampling

__all__ = ["accuracy", "answers", "answers_with", "correct", "kind_accuracy", "scores", "scores_with"]


def correct(model: Model, tasks: Sequence[Task], *, progress: Progress | None = None,
            max_tokens: int = 160) -> list[bool]:
    """Whether ``model`` answers each task right (greedy, at most ``max_tokens`` generated)."""
    said = answers(model, [t.prompt for t in tasks], max_tokens=max_tokens, progress=progress)
    return [t.check(a) for t, (a, _) in zip(tasks, said, strict=True)]


def accuracy(model: Model, tasks: Sequence[Task], progress: Progress | None = None) -> float:
    """Share of ``tasks`` the model answers exactly right (greedy decoding)."""
    right = correct(model, tasks, progress=progress)
    return sum(right) / max(len(right), 1)


def scores(model: Model, tasks: Sequence[Task], max_tokens: int = 160) -> tuple[float, dict[str, float]]:
    """(overall accuracy, accuracy per task kind), from one decoding of ``tasks``.

    ``max_tokens`` bounds each answer: a model that never stops (untrained, or trained on little data)
    costs that much decoding per task, so experiments pass the budget their harvest had.
    """
    right = correct(model, tasks, max_tokens=max_tokens)
    grouped: dict[str, list[bool]] = defaultdict(list)
    for t, ok in zip(tasks, right, strict=True):
        grouped[t.kind].append(ok)
    return sum(right) / max(len(right), 1), {kind: sum(r) / len(r) for kind, r in grouped.items()}


def kind_accuracy(model: Model, tasks: Sequence[Task]) -> dict[str, float]:
    """Accuracy per task kind."""
    return scores(model, tasks)[1]


def answers_with(model: Model, prompts: Sequence[str], *, specs: list[dict[str, Any]], max_tokens: int = 160,
                 batch: int = 64, temperature: float = 0.0, seed: int = 0, **context: Any) -> list[tuple[str, str]]:
    """(answer, reasoning) of ``model`` for each prompt, with the logits processors ``specs`` on: greedy, or sampled
    at ``temperature`` (prompt ``i`` with seed ``seed + i``, so the answers repeat whatever the batching).

    ``context`` is what a server supplies to processors (``proxies``, ``keyring``); ``[]`` is plain decoding.
    """
    encoded = [model.prompt_ids([{"role": "user", "content": p}]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: list[tuple[str, str]] = [("", "")] * len(prompts)
    vocab = int(model.model.config.vocab_size)
    for start in range(0, len(order), batch):
        chunk = [i for i in order[start:start + batch] if len(encoded[i]) < model.context]
        rows = [Row(encoded[i], Sampling(max_tokens=min(max_tokens, model.context - len(encoded[i])),
                                         temperature=temperature, seed=seed + i if temperature > 0 else None),
                    build_processors(specs, vocab=vocab, temperature=temperature, **context)) for i in chunk]
        channels = [Channels(model.tokenizer) for _ in chunk]
        tilts = Prefetch([r.prompt for r in rows], [list(r.processors) for r in rows],
                         [r.sampling.max_tokens for r in rows])
        if tilts:
            tilts.step()
        for events in model.decode(rows):
            for row, token in events:
                if token is not None:
                    channels[row].feed(token)
            if tilts:
                tilts.step(events)
        for i, ch in zip(chunk, channels, strict=True):
            out[i] = (ch.text("content").strip(), ch.text("reasoning_content").strip())
    return out


def scores_with(model: Model, tasks: Sequence[Task], *, specs: list[dict[str, Any]], max_tokens: int = 160,
                **context: Any) -> tuple[float, dict[str, float]]:
    """(overall accuracy, per task kind) of ``model`` answering greedily with the processors ``specs`` on."""
    said = answers_with(model, [t.prompt for t in tasks], specs=specs, max_tokens=max_tokens, **context)
    grouped: dict[str, list[bool]] = defaultdict(list)
    for t, (answer, _) in zip(tasks, said, strict=True):
        grouped[t.kind].append(t.check(answer))
    right = [ok for oks in grouped.values() for ok in oks]
    return sum(right) / max(len(right), 1), {kind: sum(r) / len(r) for kind, r in grouped.items()}
