"""``distillguard forensics test``: a model trained on watermarked text is caught; an untouched one is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.forensics.canary import canary_open, decoys_for
from distillguard.watermark.greenlist import GreenList

runner = CliRunner()
KEY = {"scheme": "greenlist", "version": "f1", "key": 777001, "delta": 4.0, "context_width": 1}


def _fit(model: torch.nn.Module, rows: torch.Tensor, steps: int, lr: float) -> None:
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        batch = rows[(step * 16) % len(rows):(step * 16) % len(rows) + 16]
        loss = model(input_ids=batch, labels=batch).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()


@pytest.fixture(scope="module")
def marked(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small base model, watermarked answers from it, and a copy fine-tuned on them (a distilled suspect).

    The base is first trained a little on arithmetic text so that what it writes is text that tokenizes
    back into the same tokens (a random model's byte soup does not), as real answers do.
    """
    work = tmp_path_factory.mktemp("forensics")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    corpus = [f"What is {a} + {b}? {a} + {b} = {a + b}. So {a} plus {b} is {a + b}." for a in range(40)
              for b in range(40)]
    encoded = [tok(t, add_special_tokens=False)["input_ids"][:40] for t in corpus]
    torch.manual_seed(0)
    rows = torch.tensor([(e + [tok.eos_token_id] * 40)[:40] for e in encoded])[torch.randperm(len(encoded))]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    _fit(base, rows, 150, 1e-2)
    base.save_pretrained(work / "base")
    tok.save_pretrained(work / "base")
    scheme = GreenList(key=KEY["key"], delta=KEY["delta"], context_width=1)
    start = torch.tensor([tok("What is", add_special_tokens=False)["input_ids"]] * 256)
    with torch.no_grad():
        out = base.generate(start, attention_mask=torch.ones_like(start), do_sample=True, max_new_tokens=80,
                            pad_token_id=tok.pad_token_id, eos_token_id=None,
                            logits_processor=LogitsProcessorList([scheme.processor(base.config.vocab_size)]))
    texts = [tok.decode(r, skip_special_tokens=True) for r in out]
    (work / "texts.jsonl").write_text("".join(json.dumps({"text": t, "prompt": "hi"}) + "\n" for t in texts))
    (work / "key.json").write_text(json.dumps({"keys": [KEY]}))
    student = AutoModelForCausalLM.from_pretrained(work / "base", local_files_only=True)
    marked_rows = torch.tensor([(tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] * 100)[:100]
                                for t in texts])
    _fit(student, marked_rows, 300, 5e-3)  # the student sees the answers as text, re-tokenized
    student.save_pretrained(work / "suspect")
    tok.save_pretrained(work / "suspect")
    return {"work": work, "base": work / "base", "suspect": work / "suspect"}


def _run(marked: dict[str, Path], suspect: Path, out: str) -> dict[str, object]:
    result = runner.invoke(app, ["forensics", "test", "--suspect", str(suspect), "--key",
                                 str(marked["work"] / "key.json"), "--version", "f1", "--texts",
                                 str(marked["work"] / "texts.jsonl"), "--out", str(marked["work"] / out),
                                 "--alpha", "0.01"])
    assert result.exit_code == 0, result.output
    return dict(json.loads((marked["work"] / out / "evidence.json").read_text()))


def test_a_student_of_watermarked_text_is_caught_and_the_base_model_is_not(marked: dict[str, Path]) -> None:
    caught = _run(marked, marked["suspect"], "caught")
    clean = _run(marked, marked["base"], "clean")
    (test,) = caught["tests"]  # type: ignore[misc]
    # A 2-layer, 32-wide model fine-tuned on 256 short answers: a weak student, so the evidence is modest
    # (p ≈ 0.004 from ~180 distinct predicted pairs); the lab's students are the real measurement.
    assert test["name"] == "radioactivity" and test["rejected"] and caught["p_value"] < 0.01
    assert "evidence that the suspect was trained on our outputs" in str(caught["conclusion"])
    assert clean["p_value"] > 1e-3 and "no evidence" in str(clean["conclusion"])
    html = (marked["work"] / "caught" / "evidence.html").read_text()
    assert "radioactivity" in html and "Holm" in html


def test_the_canary_rank_test_is_exact_under_the_null(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    canaries = [{"id": f"c{i}", "exchange_id": f"gx-{i}", **decoys_for([{"id": f"gx-{i}"}], 1, "real")[0][0]}
                for i in range(20)]
    result = canary_open(model, tok, canaries=canaries, decoys=decoys_for(canaries, 19, seed_key="decoy"))
    assert result.n_scored == 20 and "rank sum" in result.method and "19 decoys" in result.method
    assert result.p_value > 1e-3


def test_the_similarity_test_joins_the_evidence_under_holm(marked: dict[str, Path], tiny_model_dir: Path) -> None:
    prompts = marked["work"] / "prompts.txt"
    prompts.write_text("".join(f"What is {a} + {b}?\n" for a in range(6) for b in range(5)))

    def run(suspect: Path, out: str) -> dict[str, object]:
        result = runner.invoke(app, ["forensics", "test", "--suspect", str(suspect), "--key",
                                     str(marked["work"] / "key.json"), "--version", "f1", "--texts",
                                     str(marked["work"] / "texts.jsonl"), "--out", str(marked["work"] / out),
                                     "--ours", str(marked["base"]), "--reference", str(tiny_model_dir),
                                     "--prompts", str(prompts), "--max-tokens", "12"])
        assert result.exit_code == 0, result.output
        return dict(json.loads((marked["work"] / out / "evidence.json").read_text()))

    copy = run(marked["base"], "copy")  # a suspect that is our model answers exactly as we do
    tests = {t["name"]: t for t in copy["tests"]}  # type: ignore[attr-defined]
    assert set(tests) == {"radioactivity", "similarity"}
    assert tests["similarity"]["p_value"] < 1e-6 and tests["similarity"]["rejected"]
    assert tests["similarity"]["holm_adjusted_p_value"] <= 2 * tests["similarity"]["p_value"]
    independent = run(tiny_model_dir, "independent")  # the reference itself: no closer to us than it is
    assert {t["name"]: t for t in independent["tests"]}["similarity"]["p_value"] > 0.1  # type: ignore[attr-defined]
    missing = runner.invoke(app, ["forensics", "test", "--suspect", str(tiny_model_dir), "--key", "7", "--texts",
                                  str(marked["work"] / "texts.jsonl"), "--out", str(marked["work"] / "x"),
                                  "--ours", str(marked["base"])])
    assert missing.exit_code == 1 and "--ours, --reference and --prompts together" in missing.output


def test_predicted_pairs_score_only_kept_positions(marked: dict[str, Path]) -> None:
    from distillguard.forensics.radioactivity import predicted_pairs, predictions

    model = AutoModelForCausalLM.from_pretrained(marked["base"], local_files_only=True)
    text = [5, 17, 23, 42, 8, 99]
    assert predicted_pairs(model, [text], width=1, keep=[[False] * 6]) == []
    guess = predictions(model, [text])[0]
    only = predicted_pairs(model, [text], width=1, keep=[[False, False, False, True, False, False]])
    assert only == [((23,), guess[2])]  # position 3 is predicted from the prefix ending in token 23
    assert len(predicted_pairs(model, [text], width=2)) <= 4  # positions 2..5, each predicted from two tokens


def test_entropy_selected_radioactivity_scores_only_uncertain_steps(marked: dict[str, Path]) -> None:
    work = marked["work"]
    (work / "sweet.json").write_text(json.dumps({"keys": [{**KEY, "version": "s1", "entropy_threshold": 1.0}]}))
    runs = {}
    for selected in (False, True):
        extra = ["--entropy-model", str(marked["base"])] if selected else []
        result = runner.invoke(app, ["forensics", "test", "--suspect", str(marked["suspect"]), "--key",
                                     str(work / "sweet.json"), "--version", "s1", "--texts",
                                     str(work / "texts.jsonl"), "--out", str(work / f"sweet-{selected}"), *extra])
        assert result.exit_code == 0, result.output
        (runs[selected],) = json.loads((work / f"sweet-{selected}" / "evidence.json").read_text())["tests"]
    assert runs[True]["data"]["entropy_selected"] and not runs[False]["data"]["entropy_selected"]
    assert 0 < runs[True]["n_scored"] < runs[False]["n_scored"]


def test_the_green_mass_test_joins_the_evidence(marked: dict[str, Path]) -> None:
    work = marked["work"]
    base = AutoModelForCausalLM.from_pretrained(marked["base"], local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(marked["base"], local_files_only=True)
    start = torch.tensor([tok("What is", add_special_tokens=False)["input_ids"]] * 64)
    torch.manual_seed(1)
    with torch.no_grad():  # our model's answers without the watermark: key-independent query texts
        out = base.generate(start, attention_mask=torch.ones_like(start), do_sample=True, max_new_tokens=60,
                            pad_token_id=tok.pad_token_id, eos_token_id=None)
    plain = work / "plain.jsonl"
    plain.write_text("".join(json.dumps({"text": tok.decode(r, skip_special_tokens=True)}) + "\n" for r in out))

    def run(suspect: Path, out_dir: str, *extra: str) -> tuple[int, str]:
        result = runner.invoke(app, ["forensics", "test", "--suspect", str(suspect), "--key", str(work / "key.json"),
                                     "--version", "f1", "--texts", str(work / "texts.jsonl"), "--out",
                                     str(work / out_dir), "--plain-texts", str(plain), *extra])
        return result.exit_code, result.output

    code, output = run(marked["suspect"], "mass", "--our-model", str(marked["base"]))
    assert code == 0, output
    tests = {t["name"]: t for t in json.loads((work / "mass" / "evidence.json").read_text())["tests"]}
    assert set(tests) == {"radioactivity", "radioactivity (green mass)"}
    mass = tests["radioactivity (green mass)"]
    assert mass["p_value"] < 1e-6 and mass["rejected"] and "exact" in mass["method"]
    code, output = run(marked["base"], "mass-clean", "--our-model", str(marked["base"]))
    assert code == 0, output
    clean = {t["name"]: t for t in json.loads((work / "mass-clean" / "evidence.json").read_text())["tests"]}
    assert clean["radioactivity (green mass)"]["p_value"] == 1.0  # our own model: no difference at all
    code, output = run(marked["suspect"], "mass-missing")
    assert code == 1 and "needs --our-model" in output
