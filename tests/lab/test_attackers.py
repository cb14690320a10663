"""Adaptive attackers and defence stacks in the lab: filters on a harvest, policies for stacks and mixing."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")  # the lab extra

from distillguard.errors import ConfigError
from distillguard.lab.attackers import as_examples, correct_only, low_perplexity, reply_losses
from distillguard.lab.examples import Example
from distillguard.lab.experiment import LabConfig, _policy, antidistillation_spec
from distillguard.lab.harvest import Outcome
from distillguard.lab.tasks import make_tasks
from distillguard.lab.train import ModelSpec, TrainSettings, train_model
from distillguard.models.load import load_model


def test_correct_only_keeps_the_right_answers_with_their_reasoning() -> None:
    pool = make_tasks(["add", "tool"], 6, seed=0)
    got = [Outcome(t.prompt, i, "ok", t.answer if i % 2 else "0", f"r{i}") for i, t in enumerate(pool)]
    got.append(Outcome("What is 1 + 1?", 0, "ok", "2", "r"))  # not in the pool: cannot be checked, dropped
    got.append(Outcome(pool[1].prompt, 0, "429"))  # a refusal is no pair
    kept = correct_only(got, pool)
    assert [e.reasoning for e in kept] == ["r1", "r3", "r5"]
    assert [e.reasoning for e in correct_only(got, pool, with_reasoning=False)] == [None] * 3
    assert len(as_examples(got)) == 7


def test_the_perplexity_filter_drops_the_replies_its_model_finds_most_surprising(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    usual = [Example(f"What is {a} + {a}?", str(2 * a), f"{a} + {a} = {2 * a}") for a in range(1, 9)]
    own = [Example(f"What is {a} + {b}?", str(a + b), f"{a} + {b} = {a + b}") for a in range(10) for b in range(10)]
    model = train_model(own, ModelSpec(layers=1, width=32, heads=2, context=128, vocab=400),
                        settings=TrainSettings(steps=60, batch=16, lr=3e-3, warmup=5), out=tmp_path / "own",
                        tokenizer=load_model(tiny_model_dir).tokenizer)
    odd = Example("What is 3 + 3?", "6", "zq xv " * 8)
    losses = reply_losses(model, [*usual, odd, Example("x " * 300, "y")])
    assert losses[-1] == float("inf") and all(loss > 0 for loss in losses)
    kept = low_perplexity(model, [*usual[:4], odd, *usual[4:]], keep=8 / 9)
    assert kept == usual  # the odd one out is dropped, the order kept
    with pytest.raises(ValueError, match="keep must be in"):
        low_perplexity(model, usual, keep=0)


def test_a_stack_merges_its_defences_per_account_and_mixing_spares_the_unflagged() -> None:
    config = LabConfig(antidistillation_lambda=0.2)
    accounts = [f"a{i}" for i in range(4)]
    records = _policy("antidistillation+summarize_reasoning", accounts, config)
    assert [r.subject for r in records] == [f"account:a{i}" for i in range(4)]
    assert all(r.transforms == ["summarize_reasoning"] and r.logits_processors is not None
               and r.logits_processors[0].model_dump() == antidistillation_spec(config) for r in records)
    half = _policy("summarize_reasoning+withhold_reasoning", accounts, config.model_copy(update={"flagged_share": 0.5}))
    assert [r.subject for r in half] == ["account:a0", "account:a1"]
    assert half[0].transforms == ["summarize_reasoning", "withhold_reasoning"] and half[0].logits_processors is None
    assert _policy("none+summarize_reasoning", accounts, config)[0].transforms == ["summarize_reasoning"]
    with pytest.raises(ConfigError, match="unknown defence 'shuffle'"):
        _policy("none+shuffle", [], config)
