"""Held-out accuracy of a lab model: batched greedy decoding, checked answer by answer.

Evaluation decodes hundreds of prompts per model, so it batches them (sorted by
length to waste little padding) through the model server's own decoding loop:
on 2 CPU cores that is an order of magnitude faster than one prompt at a time,
and greedy decoding gives the same answers either way (a test checks it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from distillguard.lab.generate import Channels, Model, Row, Sampling
from distillguard.lab.tasks import Task

Progress = Callable[[int, int], None]


def answers(model: Model, prompts: Sequence[str], max_tokens: int = 160, batch: int = 64,
            progress: Progress | None = None) -> list[tuple[str, str]]:
    """(answer, reasoning) of ``model`` for each prompt, greedy, in the order given."""
    encoded = [model.prompt_ids([{"role": "user", "content": p}]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    out: list[tuple[str, str]] = [("", "")] * len(prompts)
    for start in range(0, len(order), batch):
        chunk = [i for i in order[start:start + batch] if len(encoded[i]) < model.context]
        rows = [Row(encoded[i], Sampling(max_tokens=min(max_tokens, model.context - len(encoded[i])),
                                         temperature=0)) for i in chunk]
        channels = [Channels(model.tokenizer) for _ in chunk]
        for events in model.decode(rows):
            for row, token in events:
                if token is not None:
                    channels[row].feed(token)
        for i, ch in zip(chunk, channels, strict=True):
            out[i] = (ch.text("content").strip(), ch.text("reasoning_content").strip())
        if progress:
            progress(min(start + batch, len(prompts)), len(prompts))
    return out


def correct(model: Model, tasks: Sequence[Task], progress: Progress | None = None,
            max_tokens: int = 160) -> list[bool]:
    """Whether ``model`` answers each task right (greedy, at most ``max_tokens`` generated)."""
    said = answers(model, [t.prompt for t in tasks], max_tokens=max_tokens, progress=progress)
    return [t.check(a) for t, (a, _) in zip(tasks, said, strict=True)]


def accuracy(model: Model, tasks: Sequence[Task], progress: Progress | None = None) -> float:
    """Share of ``tasks`` the model answers exactly right (greedy decoding)."""
    right = correct(model, tasks, progress)
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
