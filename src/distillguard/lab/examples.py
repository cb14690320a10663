"""Training examples and how they become token ids: the one encoding the teacher, students and proxies share.

An ``Example`` is a prompt and the assistant's reply (reasoning optional); ``encode`` turns it into the
chat-formatted ids a model trains on, ``batch`` pads encoded rows and masks the prompt out of the loss (only
the reply is scored), and ``digest`` names a list of examples (part of every training cache key).

>>> from distillguard.lab.tokenizer import train_tokenizer
>>> e = Example("What is 1 + 2?", "3", "1 + 2 = 3")
>>> e.reply()
'<think>1 + 2 = 3</think>3'
>>> tok = train_tokenizer([e.prompt, e.reply()], vocab_size=300)
>>> ids, start = encode(tok, e, 160)
>>> tok.decode(ids[start:])
'<think>1 + 2 = 3</think>3<|eos|>'
>>> padded, labels = batch([(ids, start)], tok.pad_token_id)
>>> int((labels != -100).sum()) == len(ids) - start
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from distillguard.lab.tasks import Task
from distillguard.lab.tokenizer import EOS
from distillguard.models.generate import THINK_CLOSE, THINK_OPEN

__all__ = ["Encoded", "Example", "batch", "digest", "encode", "examples_from_tasks"]

Encoded = tuple[list[int], int]
"""(token ids of prompt + reply + end of sequence, length of the prompt part)."""


@dataclass(frozen=True)
class Example:
    """One training conversation: a prompt and the assistant's reply (reasoning optional)."""

    prompt: str
    answer: str
    reasoning: str | None = None

    def reply(self) -> str:
        think = f"{THINK_OPEN}{self.reasoning}{THINK_CLOSE}" if self.reasoning else ""
        return think + self.answer


def examples_from_tasks(tasks: Sequence[Task], with_reasoning: bool = True) -> list[Example]:
    """Ground-truth examples of ``tasks`` (their traces as the reasoning, unless ``with_reasoning`` is false)."""
    return [Example(t.prompt, t.answer, t.reasoning if with_reasoning else None) for t in tasks]


def encode(tokenizer: PreTrainedTokenizerBase, example: Example, context: int) -> Encoded | None:
    """The chat-formatted ids of ``example`` and where its reply starts; None when it does not fit ``context``."""
    prompt: Any = tokenizer.apply_chat_template([{"role": "user", "content": example.prompt}],
                                                add_generation_prompt=True, tokenize=True)
    if hasattr(prompt, "keys"):  # newer transformers return a BatchEncoding
        prompt = prompt["input_ids"]
    reply = tokenizer(example.reply() + EOS, add_special_tokens=False)["input_ids"]
    ids = [int(i) for i in prompt] + [int(i) for i in reply]
    return (ids, len(prompt)) if len(ids) <= context else None


def batch(rows: Sequence[Encoded], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids, and labels that score only the reply (-100 elsewhere)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, start) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, start:len(row)] = torch.tensor(row[start:])
    return ids, labels


def digest(examples: Sequence[Example]) -> str:
    """A hash of ``examples`` in order (what a training cache key names them by)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.prompt}\x1f{e.reasoning}\x1f{e.answer}\x1e".encode())
    return h.hexdigest()
