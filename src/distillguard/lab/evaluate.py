"""Held-out accuracy of a lab model: batched greedy decoding (``models.answers``), checked answer by answer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from distillguard.lab.tasks import Task
from distillguard.models.answers import Progress, answers
from distillguard.models.generate import Model

__all__ = ["accuracy", "answers", "correct", "kind_accuracy", "scores"]


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
