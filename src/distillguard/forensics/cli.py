"""``distillguard forensics test``: was a suspect model trained on our (watermarked, canaried) outputs?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from distillguard._cli_support import errors, out, require_lab
from distillguard.errors import ConfigError, InputError

forensics = typer.Typer(help="Test a suspect model for distillation of our outputs (exact p-values).",
                        no_args_is_help=True)


@forensics.command("test")
def test(
    suspect: Annotated[str, typer.Option(help="Local model directory (open setting) or OpenAI-compatible base URL "
                                              "(closed setting).")],
    key: Annotated[str, typer.Option(help="Watermark key: integer, JSON object, key or keyring file.")],
    texts: Annotated[Path, typer.Option(help='Our watermarked answers, JSONL {"text", "prompt"}.')],
    out_dir: Annotated[Path, typer.Option("--out", help="Where evidence.json and evidence.html go.")],
    scheme: Annotated[str, typer.Option(help="greenlist or tournament (a keyring record names its own).")]
    = "greenlist",
    version: Annotated[str | None, typer.Option(help="Key version, with a keyring file.")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="The watermark's tokenizer directory (closed setting).")]
    = None,
    canaries: Annotated[Path | None, typer.Option(help="A gateway log directory whose canaries to test.")] = None,
    decoys: Annotated[int, typer.Option(help="Look-alike canaries per real one.")] = 99,
    model: Annotated[str | None, typer.Option(help="Closed setting: model id (default: the first listed).")] = None,
    api_key: Annotated[str, typer.Option(envvar="SUSPECT_API_KEY", help="Closed setting: API key.")] = "unused",
    max_tokens: Annotated[int, typer.Option(help="Closed setting: tokens per answer.")] = 160,
    alpha: Annotated[float, typer.Option(help="Family-wise error rate.")] = 1e-3,
    ours: Annotated[str | None, typer.Option(help="Similarity test: our model (directory or URL).")] = None,
    reference: Annotated[str | None, typer.Option(help="Similarity test: an independent model of similar skill "
                                                       "(directory or URL).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="Similarity test: prompts, JSONL {\"prompt\"} or lines.")]
    = None,
    our_model: Annotated[Path | None, typer.Option(
        "--our-model", "--entropy-model",
        help="Our model (local directory): with a key that has an entropy_threshold, score only the steps "
             "where this model was at least that uncertain (SWEET); with --plain-texts, the green-mass "
             "test's reference.")] = None,
    plain_texts: Annotated[Path | None, typer.Option(
        help='Open setting, green-list key: our model\'s answers without the watermark, JSONL {"text"}; adds '
             "the green-mass test (does the suspect put more probability on our green tokens than "
             "--our-model does).")] = None,
) -> None:
    """Radioactivity, canary and similarity tests on a suspect, combined with Holm's procedure.

    Example: distillguard forensics test --suspect lab-out/students/abc --key keys.json --version v1 \\
    --texts watermarked.jsonl --canaries gateway-log --out evidence/
    """
    with errors():
        require_lab()
        from distillguard.forensics.canary import canary_closed, canary_open, decoys_for, read_canaries
        from distillguard.forensics.evidence import Evidence, Finding
        from distillguard.watermark.base import load_scheme, model_vocab, read_texts
        from distillguard.watermark.keyring import Keyring

        chosen = Keyring.load(Path(key)).scheme(version) if version else load_scheme(scheme, key)
        rows = read_texts(texts)
        found = read_canaries(canaries) if canaries else []
        ours_lm = _LocalModel(our_model)  # loaded once, by the first test that needs it
        closed = suspect.startswith(("http://", "https://"))
        if closed and plain_texts is not None:
            raise ConfigError("--plain-texts is for the open setting: the suspect's weights must be local")
        evidence = Evidence(suspect, "closed" if closed else "open",
                            {"scheme": chosen.name, "version": chosen.version}, alpha)
        h0 = "the suspect was not trained on text marked with this key"
        if closed:
            answers, tok = _ask_suspect(suspect, model, api_key, max_tokens, rows, tokenizer)
            from distillguard.forensics.radioactivity import radioactivity_from_tokens

            ids = [tok(a, add_special_tokens=False)["input_ids"] for a in answers]
            prompt_ids = [tok(r["prompt"] or "", add_special_tokens=False)["input_ids"] for r in rows]
            keep = _uncertain_steps(chosen, ours_lm, prompt_ids, ids)
            evidence.findings.append(Finding(
                "radioactivity", h0, "the suspect's answers carry the watermark",
                {"prompts": len(rows), "answers": len(answers), "entropy_selected": keep is not None},
                radioactivity_from_tokens(chosen, ids, model_vocab(tokenizer, tok), prompt_ids, keep)))
            if found:
                fakes = decoys_for(found, decoys)
                evidence.findings.append(Finding(
                    "canaries", "the suspect never saw the canaries sent to watched accounts",
                    "the suspect writes our canaries' invented names", {"canaries": len(found), "decoys": decoys},
                    canary_closed(answers, found, [[f["marker"] for f in fs] for fs in fakes])))
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from distillguard.forensics.radioactivity import radioactivity_open

            path = Path(suspect)
            if not (path / "config.json").is_file():
                raise InputError(f"no model at {path}: give a local model directory or an http(s) URL")
            lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()  # type: ignore[no-untyped-call]
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            vocab = int(lm.config.vocab_size)
            if tokenizer is not None and model_vocab(
                    tokenizer, AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)) != vocab:
                raise ConfigError("the open-setting test reads the suspect's predictions in the watermark's "
                                  "token ids: the suspect must share the watermark's tokenizer (use the closed "
                                  "setting otherwise)")
            ids = [tok(r["text"], add_special_tokens=False)["input_ids"] for r in rows]
            keep = _uncertain_steps(chosen, ours_lm, [[] for _ in ids], ids)
            evidence.findings.append(Finding(
                "radioactivity", h0, "the suspect predicts green tokens more often than chance",
                {"texts": len(rows), "tokens": sum(len(i) for i in ids), "entropy_selected": keep is not None},
                radioactivity_open(chosen, lm, ids, vocab, keep)))
            if plain_texts is not None:
                evidence.findings.append(_green_mass_finding(chosen, lm, tok, ours_lm, plain_texts, h0))
            if found:
                evidence.findings.append(Finding(
                    "canaries", "the suspect never saw the canaries sent to watched accounts",
                    "the suspect finds our canaries likelier than look-alikes",
                    {"canaries": len(found), "decoys": decoys},
                    canary_open(lm, tok, found, decoys_for(found, decoys))))
        if ours or reference or prompts:
            if not (ours and reference and prompts):
                raise ConfigError("the similarity test needs --ours, --reference and --prompts together")
            from distillguard.forensics.similarity import similarity_test
            from distillguard.lab.harvest import read_prompts

            asked = read_prompts(prompts)
            said = {who: _answers(where, asked, api_key, max_tokens)
                    for who, where in (("ours", ours), ("suspect", suspect), ("reference", reference))}
            evidence.findings.append(Finding(
                "similarity", "the suspect agrees with our model no more often than the reference model does",
                "the suspect gives our model's answers more often", {"prompts": len(asked), "reference": reference},
                similarity_test(said["ours"], said["suspect"], said["reference"])))
        data = evidence.write(out_dir)
        out.print(f"{data['conclusion']}\n→ {out_dir / 'evidence.json'}, {out_dir / 'evidence.html'}")


class _LocalModel:
    """Our model (``--our-model``), loaded from its directory at most once, when a test first needs it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._model: Any = None

    def found(self) -> bool:
        return self.path is not None and (Path(self.path) / "config.json").is_file()

    def get(self) -> Any:
        if self._model is None:
            assert self.path is not None  # callers check found() first
            from transformers import AutoModelForCausalLM

            self._model = AutoModelForCausalLM.from_pretrained(  # type: ignore[no-untyped-call]
                self.path, local_files_only=True).eval()
        return self._model


def _green_mass_finding(scheme: Any, suspect: Any, tok: Any, ours: _LocalModel, plain_texts: Path,
                        h0: str) -> Any:
    """The green-mass test of the suspect against our model on our unwatermarked answers."""
    from distillguard.forensics.evidence import Finding
    from distillguard.forensics.radioactivity import green_mass_test
    from distillguard.watermark.base import read_texts
    from distillguard.watermark.selective import model_context

    if not ours.found():
        raise ConfigError("the green-mass test (--plain-texts) needs --our-model: our model's local directory")
    if not hasattr(scheme, "gamma"):
        raise ConfigError("the green-mass test needs a green-list key")
    context = min(model_context(suspect), model_context(ours.get()))
    ids = [tok(r["text"], add_special_tokens=False)["input_ids"][:context] for r in read_texts(plain_texts)]
    keep = _uncertain_steps(scheme, ours, [[] for _ in ids], ids) or [[True] * len(i) for i in ids]
    return Finding(
        "radioactivity (green mass)", h0, "the suspect puts more probability on our green tokens than our model does",
        {"plain_texts": len(ids), "tokens": sum(len(i) for i in ids), "reference": str(ours.path),
         "entropy_selected": getattr(scheme, "entropy_threshold", 0.0) > 0},
        green_mass_test(scheme, suspect, ours.get(), ids, keep))


def _uncertain_steps(scheme: Any, ours: _LocalModel, prompts: list[list[int]],
                     texts: list[list[int]]) -> list[list[bool]] | None:
    """Per token of each text, whether our model's entropy reached the key's threshold (None: score all)."""
    threshold = float(getattr(scheme, "entropy_threshold", 0.0))
    if ours.path is None or threshold <= 0:
        return None
    from distillguard.watermark.selective import entropies_batch

    if not ours.found():
        raise InputError(f"--entropy-model: no model at {ours.path}")
    return [[h >= threshold for h in e] for e in entropies_batch(ours.get(), list(zip(prompts, texts, strict=True)))]


def _answers(where: str, prompts: list[str], api_key: str, max_tokens: int) -> list[str]:
    """Greedy answers of a local model directory or an OpenAI-compatible endpoint."""
    if where.startswith(("http://", "https://")):
        import openai

        client = openai.OpenAI(base_url=where, api_key=api_key, max_retries=2)
        name = client.models.list().data[0].id
        return [client.chat.completions.create(model=name, messages=[{"role": "user", "content": p}],
                                               max_tokens=max_tokens, temperature=0).choices[0].message.content or ""
                for p in prompts]
    from distillguard.lab.evaluate import answers
    from distillguard.lab.serve import load_model

    return [a for a, _ in answers(load_model(Path(where)), prompts, max_tokens=max_tokens)]


def _ask_suspect(url: str, model: str | None, api_key: str, max_tokens: int, rows: list[dict[str, Any]],
                 tokenizer: Path | None) -> tuple[list[str], Any]:
    if tokenizer is None:
        raise ConfigError("the closed setting needs --tokenizer: the watermark's tokenizer directory")
    if not all(r["prompt"] for r in rows):
        raise ConfigError("the closed setting prompts the suspect with each text's \"prompt\"; some have none")
    import openai
    from transformers import AutoTokenizer

    client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=2)
    name = model or client.models.list().data[0].id
    answers = []
    for r in rows:
        resp = client.chat.completions.create(model=name, messages=[{"role": "user", "content": r["prompt"]}],
                                              max_tokens=max_tokens, temperature=0.7)
        answers.append(resp.choices[0].message.content or "")
    return answers, AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
