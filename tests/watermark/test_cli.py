"""``distillguard watermark keygen|detect`` and the model server's keyring-backed ``watermark`` processor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.lab.serve import create_app
from distillguard.models.load import load_model
from distillguard.watermark.keyring import Keyring

runner = CliRunner()


@pytest.fixture(scope="module")
def keyring_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    for scheme, version in (("greenlist", "g1"), ("tournament", "t1")):
        result = runner.invoke(app, ["watermark", "keygen", "--scheme", scheme, "--version", version,
                                     "--out", str(path)])
        assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["watermark", "keygen", "--scheme", "greenlist", "--version", "g1", "--out", str(path)])
    assert again.exit_code == 1 and "appears twice" in again.output
    return path


def test_detect_prints_one_exact_result_per_text(tiny_model_dir: Path, tmp_path: Path) -> None:
    keyring_file = tmp_path / "fixed.json"  # a fixed key: the test's p-values are the same on every run
    keyring_file.write_text(json.dumps({"keys": [{"scheme": "greenlist", "version": "g1", "key": 424242,
                                                  "context_width": 1}]}))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    scheme = Keyring.load(keyring_file).scheme("g1")
    prompt = torch.tensor([tok("What is 3 + 4?")["input_ids"]])

    def text(processors: LogitsProcessorList) -> str:
        torch.manual_seed(0)
        ids = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=100,
                             min_new_tokens=100, logits_processor=processors, pad_token_id=tok.pad_token_id)
        return str(tok.decode(ids[0, prompt.shape[1]:], skip_special_tokens=True))

    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": text(LogitsProcessorList([scheme.processor(model.config.vocab_size)])),
                                 "prompt": "What is 3 + 4?"}) + "\n" +
                     json.dumps({"text": text(LogitsProcessorList())}) + "\n")
    result = runner.invoke(app, ["watermark", "detect", str(texts), "--scheme", "greenlist", "--key",
                                 str(keyring_file), "--version", "g1", "--tokenizer", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    marked, plain = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert set(marked) == {"statistic", "p_value", "n_scored", "method"}
    assert marked["p_value"] < 1e-4 < plain["p_value"] and marked["n_scored"] > 50
    wrong = runner.invoke(app, ["watermark", "detect", str(texts), "--scheme", "tournament", "--key",
                                str(keyring_file), "--version", "g1", "--tokenizer", str(tiny_model_dir)])
    assert wrong.exit_code == 1 and "is a greenlist key" in wrong.output
    texts.write_text('{"text": "fine"}\n{"txt": "typo"}\n')
    bad = runner.invoke(app, ["watermark", "detect", str(texts), "--scheme", "greenlist", "--key", "7",
                              "--tokenizer", str(tiny_model_dir)])
    assert bad.exit_code == 1 and "texts.jsonl:2" in bad.output


def test_the_model_server_watermarks_by_key_version(keyring_file: Path, tiny_model_dir: Path, serve: Any) -> None:
    model = load_model(tiny_model_dir, "tiny")
    with serve(create_app(model, keyring=Keyring.load(keyring_file))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        def ask(**extra: Any) -> Any:
            return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=60, temperature=1.0, seed=3, **extra)

        marked = ask(extra_body={"logits_processors": [{"name": "watermark", "version": "t1"}]})
        plain = ask()
        assert marked.usage.completion_tokens > 0
        assert marked.choices[0].message.model_dump() != plain.choices[0].message.model_dump()  # same seed
        with pytest.raises(openai.BadRequestError, match="no watermark key version 'nope'"):
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                           extra_body={"logits_processors": [{"name": "watermark",
                                                                              "version": "nope"}]})
    with serve(create_app(model)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="no watermark keyring"):
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                           extra_body={"logits_processors": [{"name": "watermark",
                                                                              "version": "t1"}]})
