"""``summarize_reasoning``: the rule, the same summary streamed or whole, and the gateway applying it per policy,
driven by the official ``openai`` client against the lab model server."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from distillguard.gateway.reasoning import Steps, summarize, summarize_step
from distillguard.lab.tasks import make_tasks

TRACE = "units: 8 + 5 = 13, carry 1\ntens: 2 + 4 + 1 = 7\nfinal carry 0"
SUMMARY = "units: 13\ntens: 7\nfinal carry 0"


@pytest.mark.parametrize(("step", "summary"), [
    ("units: 8 + 5 = 13, so write 3 carry 1", "units: 13"),
    ("tens: 13 - 7 = 6, so write 6, borrow 1", "tens: 6"),
    ("123 x 40 = 4920", "4920"),
    ("x terms: 3 + -2 = 1", "x terms: 1"),
    ("city = Paris", "city = Paris"),  # the left side names something: kept
    ("the request needs get_weather", "the request needs get_weather"),  # no equation: kept
    ("Natalia sold 48/2 = 24 clips in May.", "24 clips in May."),
    ("", ""),
    ("a == b", "a == b"),
])
def test_each_step_keeps_its_label_and_result_and_loses_the_computation(step: str, summary: str) -> None:
    assert summarize_step(step) == summary


def test_lab_traces_keep_every_intermediate_result_and_no_operands() -> None:
    for task in make_tasks(["add", "sub"], 40, seed=3):
        steps = task.reasoning.split("\n")
        for step, line in zip(steps, summarize(task.reasoning).split("\n"), strict=True):
            if "=" in step:  # "tens: 5 + 7 + 1 = 13, so write 3 carry 1" -> "tens: 13"
                label, result = step.split(":")[0], step.split("=")[1].split(",")[0].strip()
                assert line == f"{label}: {result}" and "+" not in line and " - " not in line
            else:  # "final carry 1": no equation, kept
                assert line == step


def test_a_streamed_summary_is_the_whole_summary_wherever_the_stream_splits() -> None:
    rng = random.Random(0)
    for text in (TRACE, TRACE + "\n", "one line = 3 + 4", *(t.reasoning for t in make_tasks(["add"], 5, seed=1))):
        for _ in range(20):
            cuts = sorted(rng.sample(range(1, len(text)), min(6, len(text) - 1)))
            steps = Steps()
            parts = [steps.feed(text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            assert "".join(parts) + steps.close() == summarize(text)


@pytest.fixture(scope="module")
def forced(force_answer: Any) -> dict[str, Any]:
    """Request extras that make the tiny upstream answer ``<think>TRACE</think>813``."""
    return force_answer(f"<think>{TRACE}</think>813", "gateway_test_force_trace")


def test_the_gateway_summarizes_for_its_subject_streamed_or_not_and_logs_the_whole_trace(
        model_server: str, serve: Any, tmp_path: Path, forced: dict[str, Any]) -> None:
    import openai

    from distillguard.gateway.app import Gateway, create_app
    from distillguard.gateway.config import GatewaySettings
    from distillguard.gateway.keys import KeyStore
    from distillguard.gateway.policy import Policy
    from distillguard.gateway.segments import SegmentLog

    keys = KeyStore(tmp_path / "keys.db")
    secrets = {name: keys.add(f"acct-{name}")[0] for name in ("open", "summarized", "both")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps([
        {"subject": "account:acct-summarized", "action": "monitor", "transforms": ["summarize_reasoning"]},
        {"subject": "account:acct-both", "action": "monitor",
         "transforms": ["summarize_reasoning", "withhold_reasoning"]}]))
    settings = GatewaySettings(upstream=model_server, log_dir=tmp_path / "log", flush_interval=0.02,
                               logits_processors=forced["logits_processors"])
    log = SegmentLog(settings.log_dir, settings.flush_interval)
    ask = {"model": "tiny", "messages": [{"role": "user", "content": "What is 28 + 45?"}], "max_tokens": 100}

    def reasoning(message: Any) -> object:
        return (message.model_extra or {}).get("reasoning_content")

    with serve(create_app(Gateway(settings, keys, Policy(policy), log))) as url:
        def client(who: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{url}/v1", api_key=secrets[who], max_retries=0)

        assert reasoning(client("open").chat.completions.create(**ask).choices[0].message) == TRACE
        r = client("summarized").chat.completions.create(**ask)
        assert reasoning(r.choices[0].message) == SUMMARY and r.choices[0].message.content == "813"
        chunks = list(client("summarized").chat.completions.create(**ask, stream=True))
        streamed = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks if c.choices]
        assert "".join(s for s in streamed if s) == SUMMARY
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "813"
        assert [s for s in streamed if s][:2] == ["units: 13\n", "tens: 7\n"]  # step by step, not at the end
        both = client("both").chat.completions.create(**ask)  # withholding wins
        assert reasoning(both.choices[0].message) is None and both.choices[0].message.content == "813"
        deadline = time.monotonic() + 10  # a stream's record is written as its relay ends, just after the client's
        while True:
            log.flush()
            logged = [json.loads(x) for f in sorted((tmp_path / "log" / "exchanges").glob("*.jsonl"))
                      for x in f.read_text().splitlines()]
            if len([x for x in logged if x["account_id"] == "acct-summarized"]) == 2:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
    log.close()
    mine = [x for x in logged if x["account_id"] == "acct-summarized"]
    assert all(x["response"]["reasoning_content"] == TRACE for x in mine)  # the log keeps what the model said
    assert all(x["gateway"]["transforms"] == ["summarize_reasoning"] for x in mine)
