"""Tasks, training (deterministic, cached, reply-only loss) and accuracy for the lab's models."""

from __future__ import annotations

from pathlib import Path

import torch

from distillguard.lab.evaluate import accuracy
from distillguard.lab.examples import batch, encode
from distillguard.lab.tasks import KINDS, make_tasks, normalize
from distillguard.lab.train import Example, ModelSpec, TrainSettings, examples_from_tasks, train_model

SPEC = ModelSpec(layers=1, width=32, heads=2, context=160, vocab=350)
FAST = TrainSettings(steps=4, batch=4, seed=0, warmup=2)


def test_every_procedural_task_checks_its_own_answer() -> None:
    tasks = make_tasks([k for k in KINDS if k != "gsm8k"], 200, seed=5)
    assert all(t.check(t.answer) and t.reasoning for t in tasks)
    assert make_tasks(["mul"], 3, seed=1) == make_tasks(["mul"], 3, seed=1)
    assert normalize(" 1,234. ") == "1234" and normalize('{"b": 1, "a": 2}') == normalize('{"a":2,"b":1}')


def test_gsm8k_tasks_come_with_their_worked_solutions() -> None:
    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    (t,) = make_tasks(["gsm8k"], 1, seed=0, data_dir=data)
    assert t.reasoning and "<<" not in t.reasoning and t.answer.replace(",", "").lstrip("-").isdigit()


def test_only_the_reply_is_scored() -> None:
    examples = examples_from_tasks(make_tasks(["add"], 20, seed=0))
    from distillguard.lab.tokenizer import train_tokenizer

    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.reply())], vocab_size=300)
    row = encode(tok, Example("What is 1 + 2?", "3", "1 + 2 = 3"), 160)
    assert row is not None
    padded, labels = batch([row], tok.pad_token_id)
    ids_list, start = row
    assert padded[0, :len(ids_list)].tolist() == ids_list
    assert (labels[0, :start] == -100).all() and labels[0, start:len(ids_list)].tolist() == ids_list[start:]
    assert tok.decode(ids_list[start:]).startswith("<think>1 + 2 = 3</think>3")
    assert encode(tok, Example("x " * 400, "y"), 160) is None  # too long for the context


def test_training_is_deterministic_and_cached(tmp_path: Path) -> None:
    examples = examples_from_tasks(make_tasks(["add", "tool"], 60, seed=0))
    a = train_model(examples, SPEC, settings=FAST, out=tmp_path / "a")
    b = train_model(examples, SPEC, settings=FAST, out=tmp_path / "b")
    for (name, pa_), (_, pb) in zip(a.model.named_parameters(), b.model.named_parameters(), strict=True):
        assert torch.equal(pa_, pb), name
    stamp = (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns
    again = train_model(examples, SPEC, settings=FAST, out=tmp_path / "a")  # same run: loaded, not retrained
    assert (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns == stamp
    assert torch.equal(next(again.model.parameters()), next(a.model.parameters()))
    other = train_model(examples, SPEC, settings=TrainSettings(steps=4, batch=4, seed=1, warmup=2), out=tmp_path / "a")
    assert not torch.equal(next(other.model.parameters()), next(a.model.parameters()))


def test_accuracy_is_a_share(tmp_path: Path) -> None:
    tasks = make_tasks(["add"], 5, seed=0)
    model = train_model(examples_from_tasks(tasks), SPEC, settings=FAST, out=tmp_path / "m")
    assert 0.0 <= accuracy(model, tasks) <= 1.0
