"""Train a small causal LM on chat-formatted examples, and measure task accuracy.

The same code trains the teacher (on ground-truth tasks with their traces)
and the student (on harvested pairs, with or without the teacher's reasoning).
Models are GPT-2-style ``transformers`` models with the lab tokenizer, saved
with ``save_pretrained`` so the model server loads them like any Hugging Face
model. Training is deterministic under a seed and cached: a directory holding a
model trained with the same settings is loaded instead of retrained.

>>> spec = ModelSpec(layers=1, width=32, heads=2, context=96)
>>> spec.key({"steps": 10})[:8] == spec.key({"steps": 10})[:8]
True
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from distillguard.lab.examples import Example, batch, digest, encode, examples_from_tasks
from distillguard.lab.tokenizer import train_tokenizer
from distillguard.models.generate import Model
from distillguard.models.load import load_model

__all__ = ["Example", "ModelSpec", "TrainSettings", "examples_from_tasks", "fresh_model", "run_key", "train_model"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelSpec:
    layers: int = 4
    width: int = 128
    heads: int = 4
    context: int = 256
    vocab: int = 1024

    def key(self, training: dict[str, Any]) -> str:
        """A hash of the architecture and the training settings: the cache key."""
        blob = json.dumps({"model": asdict(self), "training": training}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    warmup: int = 100


def train_model(
    examples: Sequence[Example], spec: ModelSpec, *, settings: TrainSettings, out: Path,
    tokenizer: PreTrainedTokenizerBase | None = None, progress: Progress | None = None,
) -> Model:
    """Train a fresh model on ``examples`` into ``out`` (or load it, when ``out`` has this exact run)."""
    out = Path(out)
    key = run_key(examples, spec, settings=settings, tokenizer=tokenizer)
    if (out / "distillguard-train.json").is_file():
        meta = json.loads((out / "distillguard-train.json").read_text())
        if meta.get("key") == key:
            return load_model(out, out.name)
    random.seed(settings.seed)
    if tokenizer is None:
        texts = [t for e in examples for t in (e.prompt, e.reply())]
        tokenizer = train_tokenizer(texts, vocab_size=spec.vocab)
    model = fresh_model(spec, tokenizer, settings.seed).model
    rows = [r for e in examples if (r := encode(tokenizer, e, spec.context)) is not None]
    if not rows:
        raise ValueError("no training example fits the model's context")
    optim = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / settings.warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(s / settings.steps, 1.0))))
    order = random.Random(settings.seed)
    model.train()
    for step in range(settings.steps):
        chosen = [rows[order.randrange(len(rows))] for _ in range(settings.batch)]
        ids, labels = batch(chosen, tokenizer.pad_token_id)
        loss = model(input_ids=ids, labels=labels, attention_mask=(ids != tokenizer.pad_token_id).long()).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        schedule.step()
        if progress:
            progress(step + 1, settings.steps)
    model.eval()  # type: ignore[no-untyped-call]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "distillguard-train.json").write_text(json.dumps({"key": key, "spec": asdict(spec),
                                                             "settings": asdict(settings),
                                                             "examples": len(rows)}, indent=2))
    return Model(out.name, model, tokenizer)


def fresh_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> Model:
    """An untrained GPT-2-style model of ``spec`` for ``tokenizer``, initialised from ``seed``."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=spec.context, n_embd=spec.width, n_layer=spec.layers,
                        n_head=spec.heads, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return Model("untrained", GPT2LMHeadModel(config), tokenizer)


def run_key(examples: Sequence[Example], spec: ModelSpec, *, settings: TrainSettings,
            tokenizer: PreTrainedTokenizerBase | None = None) -> str:
    """What identifies a training run: architecture, settings, data and tokenizer (the cache key)."""
    return spec.key({**asdict(settings), "examples": digest(examples),
                     "tokenizer": None if tokenizer is None else len(tokenizer)})
