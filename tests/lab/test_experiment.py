"""``distillguard lab ...`` end to end with the tiny preset: every lab command, and results.json's contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.lab.experiment import LabConfig, preset
from distillguard.records import LabResults, PolicyRecord, read_json_list
from distillguard.records.schemas import json_schema

runner = CliRunner()


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lab") / "tiny"
    result = runner.invoke(app, ["lab", "run", "--preset", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "teacher held-out accuracy" in result.output
    assert "a smoke run" in result.output  # tiny's accuracies measure nothing, and the output says so (#21)
    return out


def test_lab_run_writes_results_in_the_documented_shape(lab_run: Path) -> None:
    results = json.loads((lab_run / "results.json").read_text())
    assert isinstance(results["teacher_accuracy"], float)
    assert set(results["baselines"]) >= {"untrained", "ground_truth_same_n"}
    runs = results["runs"]
    assert {(r["defence"], r["with_reasoning"]) for r in runs} == {
        ("none", True), ("none", False), ("withhold_reasoning", False), ("watermark", True), ("watermark", False),
        ("canary", True), ("canary", False)}
    for r in runs:
        assert isinstance(r["harvested"], int) and 0.0 <= r["student_accuracy"] <= 1.0
    # The gateway let reasoning through without a defence and withheld it under withhold_reasoning.
    assert results["harvests"]["none"]["with_reasoning"] > 0
    assert results["harvests"]["withhold_reasoning"]["with_reasoning"] == 0
    assert results["harvests"]["none"]["harvested"] == max(preset("tiny").harvest_sizes)
    svg = (lab_run / "curves.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 7 and "teacher" in svg
    # The watermark defence: the server marked what the gateway asked it to, by key version, and the mark
    # is in the harvest (the tiny teacher writes with entropy to spare).
    mark = results["harvests"]["watermark"]["watermark"]
    assert mark["p_value"] < 1e-6 and mark["n_scored"] > 100
    marked = [json.loads(x) for f in (lab_run / "gateway").glob("log-watermark/exchanges/*.jsonl")
              for x in f.read_text().splitlines()]
    assert marked and all(r["gateway"]["logits_processors"] == [{"name": "watermark", "version": "lab-watermark"}]
                          for r in marked)  # the log names the key version, never the key
    # The canary defence: the gateway marked about the configured share of answers and logged each canary
    # with its account; every canary student was put to the canary test on the canaries it trained on.
    canaries = [json.loads(x)["gateway"]["canary"] for f in (lab_run / "gateway").glob("log-canary/exchanges/*")
                for x in f.read_text().splitlines() if json.loads(x)["gateway"].get("canary")]
    assert results["harvests"]["canary"]["canaries"] == len(canaries) > 0
    for r in runs:
        if r["defence"] == "canary":
            test = r["canary_test"]
            assert 0 <= test["canaries"] <= len(canaries) and 0.0 < test["p_value"] <= 1.0
            assert test["decoys"] == preset("tiny").canary_decoys
            assert len(test.get("ranks", [])) == test["canaries"] and "rank sum" in test.get("method", "rank sum")
        else:
            assert "canary_test" not in r
    # The largest student trained on every harvested answer, so on every canary sent (exchange ids are
    # random, so how many were drawn varies; at a 25% share of 48 answers, none is a 1-in-10^6 event).
    largest = max(r["harvested"] for r in runs if r["defence"] == "canary")
    assert all(r["canary_test"]["canaries"] == len(canaries) for r in runs
               if r["defence"] == "canary" and r["harvested"] == largest)
    # Every exchange of the harvest went through the gateway and is in its log.
    logged = sum(len(f.read_text().splitlines()) for f in (lab_run / "gateway").glob("log-*/exchanges/*.jsonl"))
    assert logged == sum(h["sent"] for h in results["harvests"].values())
    # results.json is the published record, written through its model; so are the gateway policies it ran.
    Draft202012Validator(json_schema("lab-results")).validate(results)
    raw = (lab_run / "results.json").read_text()
    assert json.dumps(LabResults.model_validate_json(raw).as_json(), indent=2) == raw
    policies = {p.name: read_json_list(p, PolicyRecord) for p in (lab_run / "gateway").glob("policy-*.json")}
    assert policies["policy-none.json"] == [] and policies["policy-canary.json"]
    assert all(r.transforms == ["withhold_reasoning"] for r in policies["policy-withhold_reasoning.json"])


def test_the_tiny_preset_leaves_room_for_every_answer() -> None:
    """Its context and max_tokens fit the longest tool call, prompt and reply: with answers cut off, every
    accuracy was 0 whatever the models learned (#21)."""
    from distillguard.lab.examples import encode, examples_from_tasks
    from distillguard.lab.experiment import task_sets
    from distillguard.lab.tokenizer import train_tokenizer

    cfg = preset("tiny")
    train, held_out, pool = task_sets(cfg)
    examples = examples_from_tasks(train)
    tok = train_tokenizer([t for e in examples for t in (e.prompt, e.reply())], vocab_size=cfg.architecture.vocab)
    encoded = [encode(tok, e, 10_000) for e in examples_from_tasks([*train, *held_out, *pool])]
    assert all(r is not None for r in encoded)
    longest_reply = max(len(ids) - prompt for ids, prompt in encoded if ids)
    longest = max(len(ids) for ids, _ in encoded)
    assert longest_reply <= cfg.max_tokens and longest <= cfg.architecture.context
    assert cfg.smoke and not preset("default").smoke


def test_lab_commands_one_by_one(lab_run: Path, model_server: str, tmp_path: Path) -> None:
    teacher = runner.invoke(app, ["lab", "teacher", "--preset", "tiny", "--out", str(lab_run / "teacher")])
    assert teacher.exit_code == 0 and "held-out accuracy" in teacher.output  # cached: loaded, not retrained
    student = runner.invoke(app, ["lab", "student", "--harvest", str(lab_run / "harvest-none.jsonl"),
                                  "--preset", "tiny", "--out", str(tmp_path / "student"), "--no-with-reasoning"])
    assert student.exit_code == 0 and "without reasoning" in student.output, student.output
    evaluated = runner.invoke(app, ["lab", "evaluate", "--model", str(tmp_path / "student"), "--preset", "tiny",
                                    "--n", "10"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["tasks"] == 10
    harvested = runner.invoke(app, ["lab", "harvest", "--base-url", model_server, "--keys",
                                    str(tmp_path / "keys.db"), "--accounts", "2", "--tasks", "add", "--n", "4",
                                    "--max-tokens", "4", "--rate", "50", "--out", str(tmp_path / "h.jsonl")])
    assert harvested.exit_code == 0 and "4 of 4 prompts harvested" in harvested.output, harvested.output
    refused = runner.invoke(app, ["lab", "harvest", "--base-url", "http://198.51.100.1/v1", "--api-keys",
                                  str(tmp_path / "keys.db")])
    assert refused.exit_code == 1 and "loopback" in refused.output


def test_unknown_defences_and_presets_are_config_errors(tmp_path: Path) -> None:
    from distillguard.errors import ConfigError
    from distillguard.lab.experiment import run

    with pytest.raises(ConfigError, match="unknown defence 'tarpit'"):
        run(LabConfig(defences=["tarpit"]), tmp_path)
    with pytest.raises(ConfigError, match="unknown lab preset"):
        preset("huge")


def test_a_binary_api_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys.bin"
    keys.write_bytes(b"SQLite format 3\x00\xff\xfe")
    result = runner.invoke(app, ["lab", "harvest", "--api-keys", str(keys)])
    assert result.exit_code == 1 and "one key per line" in result.output
