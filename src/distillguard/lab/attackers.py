"""Adaptive attackers (lab only, against our own servers): what a distiller does to a harvest before training.

- ``correct_only``: keep the exchanges whose final answer is right. The attacker can check answers it can
  compute itself (arithmetic, a tool call's fields): here it is given the pool's ground truth, the upper
  bound of such checking.
- ``low_perplexity``: drop the exchanges whose reply looks unusual to the attacker's own model (the highest
  per-token loss), keeping ``keep`` of them: a defence that bends traces away from the teacher's usual text
  makes them stand out.

More data and mixing (part of the harvest through accounts the detector has not flagged) are settings of
the experiment (``harvest_sizes``, ``flagged_share``), not filters.

>>> from distillguard.lab.harvest import Outcome
>>> from distillguard.lab.tasks import Task
>>> pool = [Task("add", "What is 1 + 2?", "", "3"), Task("add", "What is 2 + 2?", "", "4")]
>>> got = [Outcome("What is 1 + 2?", 0, "ok", "3", "r"), Outcome("What is 2 + 2?", 1, "ok", "5", "r")]
>>> [e.answer for e in correct_only(got, pool)]
['3']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from distillguard.lab.examples import Example, batch, encode
from distillguard.lab.harvest import Outcome
from distillguard.lab.tasks import Task
from distillguard.models.generate import Model

__all__ = ["as_examples", "correct_only", "low_perplexity", "reply_losses"]


def as_examples(outcomes: Sequence[Outcome], *, with_reasoning: bool = True) -> list[Example]:
    """The harvested pairs (status ``ok``) as training examples, in order."""
    return [Example(o.prompt, o.answer or "", o.reasoning if with_reasoning else None)
            for o in outcomes if o.status == "ok"]


def correct_only(outcomes: Sequence[Outcome], pool: Sequence[Task], *, with_reasoning: bool = True) -> list[Example]:
    """The harvested pairs whose answer is right for its prompt's task (prompts missing from ``pool`` dropped)."""
    tasks = {t.prompt: t for t in pool}
    return [e for e in as_examples(outcomes, with_reasoning=with_reasoning)
            if e.prompt in tasks and tasks[e.prompt].check(e.answer)]


def reply_losses(model: Model, examples: Sequence[Example], *, size: int = 32) -> list[float]:
    """Mean per-token loss of each example's reply under ``model`` (inf when it does not fit the context)."""
    tok, out = model.tokenizer, [float("inf")] * len(examples)
    rows = [(i, r) for i, e in enumerate(examples) if (r := encode(tok, e, model.context)) is not None]
    with torch.inference_mode():
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            ids, labels = batch([r for _, r in part], tok.pad_token_id)
            logits = model.model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long()).logits.float()
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                       ignore_index=-100, reduction="none")
            counts = (labels[:, 1:] != -100).sum(-1).clamp(min=1)
            for (i, _), value in zip(part, (losses.sum(-1) / counts).tolist(), strict=True):
                out[i] = float(value)
    return out


def low_perplexity(model: Model, examples: Sequence[Example], *, keep: float = 0.8) -> list[Example]:
    """The ``keep`` share of ``examples`` whose replies ``model`` finds least surprising, in their order."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    losses = reply_losses(model, examples)
    ranked = sorted(range(len(examples)), key=lambda i: losses[i])[:max(1, round(keep * len(examples)))]
    return [examples[i] for i in sorted(ranked)]
