"""The lab model server, driven by the official ``openai`` client over loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
import torch
from transformers import LogitsProcessor

from distillguard.errors import InputError
from distillguard.lab.processors import register
from distillguard.models.load import load_model


class ForceText(LogitsProcessor):
    """Test processor: makes the model write the token ids ``ids`` (then end), whatever its weights."""

    def __init__(self, ids: list[int], eos: int) -> None:
        self.ids, self.eos, self.start = ids, eos, -1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.start < 0:
            self.start = int(input_ids.shape[1])
        step = int(input_ids.shape[1]) - self.start
        out = torch.full_like(scores, -1e9)
        out[:, self.ids[step] if step < len(self.ids) else self.eos] = 0.0
        return out


@pytest.fixture(scope="module")
def client(model_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=model_server, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def forced(tiny_model_dir: Path) -> dict[str, object]:
    tok = load_model(tiny_model_dir).tokenizer
    ids = tok("<think>3 + 4 = 7</think>7")["input_ids"]
    register("test_force")(lambda: ForceText(ids, tok.eos_token_id))
    return {"logits_processors": [{"name": "test_force"}]}


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_completion_shape_and_usage(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 3 + 4?"}],
                                       max_tokens=6, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.usage is not None and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason in ("stop", "length")
    again = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 3 + 4?"}],
                                           max_tokens=6, temperature=0)
    assert again.choices[0].message.content == r.choices[0].message.content  # greedy is deterministic


def test_reasoning_is_returned_separately(client: openai.OpenAI, forced: dict[str, object]) -> None:
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 3 + 4?"}],
                                       max_tokens=40, extra_body=forced)
    message = r.choices[0].message
    assert message.content == "7"
    assert message.model_extra and message.model_extra["reasoning_content"] == "3 + 4 = 7"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    assert r.usage.completion_tokens_details.reasoning_tokens > 0


def test_streaming_sends_deltas_then_usage(client: openai.OpenAI, forced: dict[str, object]) -> None:
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is 3 + 4?"}], max_tokens=40, stream=True,
        stream_options={"include_usage": True}, extra_body=forced)
    content, reasoning, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    assert (content, reasoning, finish) == ("7", "3 + 4 = 7", "stop")
    assert usage is not None and usage.completion_tokens > 0


def test_async_client_and_n_samples(model_server: str) -> None:
    async def go() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=model_server, api_key="unused", max_retries=0) as c:
            r = await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "1 + 1"}],
                                                max_tokens=5, n=2, seed=7)
            return [ch.message.content for ch in r.choices]

    assert len(asyncio.run(go())) == 2


def test_concurrent_requests_decode_together_and_get_what_they_would_alone(model_server: str,
                                                                          client: openai.OpenAI) -> None:
    prompts = [f"What is {i} + {2 * i}?" for i in range(6)]

    def ask(c: openai.OpenAI, p: str) -> tuple[str | None, str]:
        r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=6,
                                      temperature=0)
        return r.choices[0].message.content, r.choices[0].finish_reason

    alone = [ask(client, p) for p in prompts]

    async def together() -> list[tuple[str | None, str]]:
        async with openai.AsyncOpenAI(base_url=model_server, api_key="unused", max_retries=0) as c:
            rs = await asyncio.gather(*(c.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": p}], max_tokens=6, temperature=0)
                for p in prompts))
            return [(r.choices[0].message.content, r.choices[0].finish_reason) for r in rs]

    assert asyncio.run(together()) == alone


def test_errors_use_the_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="maximum context length is 128"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=500)
    with pytest.raises(openai.BadRequestError, match="unknown logits processor 'nope'"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"logits_processors": [{"name": "nope"}]})
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="tiny", messages=[])


def test_a_client_that_disconnects_does_not_block_the_server(model_server: str, client: openai.OpenAI) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "count"}], "max_tokens": 100,
            "stream": True, "temperature": 1.0}
    with httpx.stream("POST", f"{model_server}/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        next(r.iter_lines())  # read the first event, then hang up
    r2 = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r2.choices[0].finish_reason in ("stop", "length")


def test_loading_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a Hugging Face model directory"):
        load_model(tmp_path)


def test_cli_serve_help_and_bad_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distillguard.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["lab", "serve", "--help"])
    assert r.exit_code == 0 and "Example: distillguard lab serve" in r.output
    r = runner.invoke(app, ["lab", "serve", "--model", str(tmp_path)])
    assert r.exit_code == 1 and "no model at" in r.output and "Traceback" not in r.output
