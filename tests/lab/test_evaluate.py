"""Batched decoding gives each row the tokens it would get alone (padding and positions are right)."""

from __future__ import annotations

from pathlib import Path

from distillguard.lab.evaluate import kind_accuracy
from distillguard.lab.tasks import make_tasks
from distillguard.models.answers import answers
from distillguard.models.generate import Row, Sampling
from distillguard.models.load import load_model


def test_batched_greedy_answers_match_one_at_a_time(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, "tiny")
    prompts = ["What is 1 + 2?", "What is 12 + 27? Think hard.", "hi", "What is 3 + 4 + 5 + 6 + 7?"]
    together = answers(model, prompts, max_tokens=12, batch=4)
    alone = [answers(model, [p], max_tokens=12, batch=1)[0] for p in prompts]
    assert together == alone
    assert any(a or r for a, r in together)  # the random model does write something


def test_a_row_stops_when_its_client_is_gone(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, "tiny")
    prompt = model.prompt_ids([{"role": "user", "content": "What is 1 + 2?"}])
    gone = {"flag": False}
    rows = [Row(prompt, Sampling(max_tokens=20, temperature=0), stopped=lambda: gone["flag"]),
            Row(prompt, Sampling(max_tokens=20, temperature=1.0, seed=3))]
    ended: dict[int, int] = {}
    for step, events in enumerate(model.decode(rows)):
        gone["flag"] = step >= 1
        for row, token in events:
            if token is None:
                ended[row] = step
    assert ended[0] == 2 and ended.get(1, 99) >= 2


def test_accuracy_per_kind(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, "tiny")
    result = kind_accuracy(model, make_tasks(["add", "tool"], 6, seed=0))
    assert set(result) == {"add", "tool"} and all(0.0 <= v <= 1.0 for v in result.values())
