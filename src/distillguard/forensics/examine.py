"""Examine a suspect model: every forensic test its settings allow, combined into one ``Evidence``.

Open setting (a local model directory): radioactivity on the suspect's own
predictions, the green-mass test against our model, canaries ranked by the
suspect's likelihood. Closed setting (an OpenAI-compatible URL): radioactivity
and canaries in the suspect's answers. Either way, with our model, a reference
model and prompts, the similarity test. ``distillguard forensics test`` is this
function behind a command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillguard.errors import ConfigError, InputError
from distillguard.forensics.canary import canary_closed, canary_open, decoys_for, read_canaries
from distillguard.forensics.evidence import Evidence, Finding
from distillguard.forensics.radioactivity import green_mass_test, radioactivity_from_tokens, radioactivity_open
from distillguard.forensics.similarity import similarity_test
from distillguard.models.answers import answers, read_prompts
from distillguard.models.load import load_causal_lm, load_model, load_tokenizer
from distillguard.watermark.base import Scheme, load_scheme, model_vocab, read_texts
from distillguard.watermark.keyring import Keyring
from distillguard.watermark.selective import entropies_batch, model_context

H0 = "the suspect was not trained on text marked with this key"


@dataclass(frozen=True)
class ExamineOptions:
    """What to examine and how; the ``forensics test`` options, each described in its ``--help``."""

    suspect: str  # local model directory (open setting) or OpenAI-compatible base URL (closed)
    key: str  # integer, JSON object, key file or keyring file (with ``version``)
    texts: Path  # our watermarked answers, JSONL {"text", "prompt"}
    scheme: str = "greenlist"
    version: str | None = None
    tokenizer: Path | None = None  # the watermark's tokenizer directory (closed setting)
    canaries: Path | None = None  # a gateway log directory whose canaries to test
    decoys: int = 99
    model: str | None = None  # closed setting: model id (default: the first listed)
    api_key: str = "unused"
    max_tokens: int = 160
    alpha: float = 1e-3
    ours: str | None = None  # similarity test: our model (directory or URL)
    reference: str | None = None  # similarity test: an independent model of similar skill
    prompts: Path | None = None  # similarity test: prompts
    our_model: Path | None = None  # our model's directory: entropy selection and the green-mass reference
    plain_texts: Path | None = None  # open setting: our model's unwatermarked answers (green-mass test)


def examine(options: ExamineOptions) -> Evidence:
    """Run the radioactivity, canary, green-mass and similarity tests that ``options`` allow; Holm combines them."""
    o = options
    chosen = Keyring.load(Path(o.key)).scheme(o.version) if o.version else load_scheme(o.scheme, o.key)
    rows = read_texts(o.texts)
    found = read_canaries(o.canaries) if o.canaries else []
    ours = _LocalModel(o.our_model)  # loaded once, by the first test that needs it
    closed = o.suspect.startswith(("http://", "https://"))
    if closed and o.plain_texts is not None:
        raise ConfigError("--plain-texts is for the open setting: the suspect's weights must be local")
    evidence = Evidence(o.suspect, "closed" if closed else "open",
                        {"scheme": chosen.name, "version": chosen.version}, o.alpha)
    if closed:
        evidence.findings += _closed_findings(o, chosen, rows, found, ours)
    else:
        evidence.findings += _open_findings(o, chosen, rows, found, ours)
    if o.ours or o.reference or o.prompts:
        evidence.findings.append(_similarity_finding(o))
    return evidence


def _closed_findings(o: ExamineOptions, scheme: Scheme, rows: list[dict[str, Any]], found: list[dict[str, Any]],
                     ours: _LocalModel) -> list[Finding]:
    said, tok = _ask_suspect(o, rows)
    ids = [tok(a, add_special_tokens=False)["input_ids"] for a in said]
    prompt_ids = [tok(r["prompt"] or "", add_special_tokens=False)["input_ids"] for r in rows]
    keep = _uncertain_steps(scheme, ours, prompt_ids, ids)
    findings = [Finding(
        "radioactivity", H0, "the suspect's answers carry the watermark",
        {"prompts": len(rows), "answers": len(said), "entropy_selected": keep is not None},
        radioactivity_from_tokens(scheme, ids, vocab=model_vocab(o.tokenizer, tok), prompts=prompt_ids, keep=keep))]
    if found:
        fakes = decoys_for(found, o.decoys)
        findings.append(Finding(
            "canaries", "the suspect never saw the canaries sent to watched accounts",
            "the suspect writes our canaries' invented names", {"canaries": len(found), "decoys": o.decoys},
            canary_closed(said, found, [[f["marker"] for f in fs] for fs in fakes])))
    return findings


def _open_findings(o: ExamineOptions, scheme: Scheme, rows: list[dict[str, Any]], found: list[dict[str, Any]],
                   ours: _LocalModel) -> list[Finding]:
    path = Path(o.suspect)
    if not (path / "config.json").is_file():
        raise InputError(f"no model at {path}: give a local model directory or an http(s) URL")
    lm = load_causal_lm(path)
    tok = load_tokenizer(path)
    vocab = int(lm.config.vocab_size)
    if o.tokenizer is not None and model_vocab(o.tokenizer, load_tokenizer(o.tokenizer)) != vocab:
        raise ConfigError("the open-setting test reads the suspect's predictions in the watermark's "
                          "token ids: the suspect must share the watermark's tokenizer (use the closed "
                          "setting otherwise)")
    ids = [tok(r["text"], add_special_tokens=False)["input_ids"] for r in rows]
    keep = _uncertain_steps(scheme, ours, [[] for _ in ids], ids)
    findings = [Finding(
        "radioactivity", H0, "the suspect predicts green tokens more often than chance",
        {"texts": len(rows), "tokens": sum(len(i) for i in ids), "entropy_selected": keep is not None},
        radioactivity_open(scheme, lm, texts=ids, vocab=vocab, keep=keep))]
    if o.plain_texts is not None:
        findings.append(_green_mass_finding(scheme, lm, tok, ours, o.plain_texts))
    if found:
        findings.append(Finding(
            "canaries", "the suspect never saw the canaries sent to watched accounts",
            "the suspect finds our canaries likelier than look-alikes", {"canaries": len(found), "decoys": o.decoys},
            canary_open(lm, tok, canaries=found, decoys=decoys_for(found, o.decoys))))
    return findings


def _similarity_finding(o: ExamineOptions) -> Finding:
    if not (o.ours and o.reference and o.prompts):
        raise ConfigError("the similarity test needs --ours, --reference and --prompts together")
    asked = read_prompts(o.prompts)
    said = {who: _answers(where, asked, o.api_key, o.max_tokens)
            for who, where in (("ours", o.ours), ("suspect", o.suspect), ("reference", o.reference))}
    return Finding(
        "similarity", "the suspect agrees with our model no more often than the reference model does",
        "the suspect gives our model's answers more often", {"prompts": len(asked), "reference": o.reference},
        similarity_test(said["ours"], said["suspect"], said["reference"]))


class _LocalModel:
    """Our model (``--our-model``), loaded from its directory at most once, when a test first needs it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._model: PreTrainedModel | None = None

    def found(self) -> bool:
        return self.path is not None and (Path(self.path) / "config.json").is_file()

    def get(self) -> PreTrainedModel:
        if self._model is None:
            if self.path is None:
                raise ConfigError("no --our-model given")  # callers check found() first
            self._model = load_causal_lm(self.path)
        return self._model


def _green_mass_finding(scheme: Scheme, suspect: PreTrainedModel, tok: PreTrainedTokenizerBase, ours: _LocalModel,
                        plain_texts: Path) -> Finding:
    """The green-mass test of the suspect against our model on our unwatermarked answers."""
    if not ours.found():
        raise ConfigError("the green-mass test (--plain-texts) needs --our-model: our model's local directory")
    if not hasattr(scheme, "gamma"):
        raise ConfigError("the green-mass test needs a green-list key")
    context = min(model_context(suspect), model_context(ours.get()))
    ids = [tok(r["text"], add_special_tokens=False)["input_ids"][:context] for r in read_texts(plain_texts)]
    keep = _uncertain_steps(scheme, ours, [[] for _ in ids], ids) or [[True] * len(i) for i in ids]
    return Finding(
        "radioactivity (green mass)", H0, "the suspect puts more probability on our green tokens than our model does",
        {"plain_texts": len(ids), "tokens": sum(len(i) for i in ids), "reference": str(ours.path),
         "entropy_selected": getattr(scheme, "entropy_threshold", 0.0) > 0},
        green_mass_test(scheme, suspect, reference=ours.get(), texts=ids, keep=keep))


def _uncertain_steps(scheme: Scheme, ours: _LocalModel, prompts: list[list[int]],
                     texts: list[list[int]]) -> list[list[bool]] | None:
    """Per token of each text, whether our model's entropy reached the key's threshold (None: score all)."""
    threshold = float(getattr(scheme, "entropy_threshold", 0.0))
    if ours.path is None or threshold <= 0:
        return None
    if not ours.found():
        raise InputError(f"--entropy-model: no model at {ours.path}")
    return [[h >= threshold for h in e] for e in entropies_batch(ours.get(), list(zip(prompts, texts, strict=True)))]


def _answers(where: str, prompts: list[str], api_key: str, max_tokens: int) -> list[str]:
    """Greedy answers of a local model directory or an OpenAI-compatible endpoint."""
    if where.startswith(("http://", "https://")):
        client = openai.OpenAI(base_url=where, api_key=api_key, max_retries=2)
        name = client.models.list().data[0].id
        return [client.chat.completions.create(model=name, messages=[{"role": "user", "content": p}],
                                               max_tokens=max_tokens, temperature=0).choices[0].message.content or ""
                for p in prompts]
    return [a for a, _ in answers(load_model(Path(where)), prompts, max_tokens=max_tokens)]


def _ask_suspect(o: ExamineOptions, rows: list[dict[str, Any]]) -> tuple[list[str], PreTrainedTokenizerBase]:
    """The suspect's answers to each text's prompt (sampled, as a harvester would see them) and our tokenizer."""
    if o.tokenizer is None:
        raise ConfigError("the closed setting needs --tokenizer: the watermark's tokenizer directory")
    if not all(r["prompt"] for r in rows):
        raise ConfigError("the closed setting prompts the suspect with each text's \"prompt\"; some have none")
    client = openai.OpenAI(base_url=o.suspect, api_key=o.api_key, max_retries=2)
    name = o.model or client.models.list().data[0].id
    said = []
    for r in rows:
        resp = client.chat.completions.create(model=name, messages=[{"role": "user", "content": r["prompt"]}],
                                              max_tokens=o.max_tokens, temperature=0.7)
        said.append(resp.choices[0].message.content or "")
    return said, load_tokenizer(o.tokenizer)
