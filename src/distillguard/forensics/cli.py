"""``distillguard forensics test``: was a suspect model trained on our (watermarked, canaried) outputs?

A thin command line over ``forensics.examine``: it parses the options, runs the
examination and writes the evidence report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distillguard._cli_support import errors, out, require_lab

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
        # Imported here: torch, transformers and openai (the lab extra) load only when this command runs.
        from distillguard.forensics.examine import ExamineOptions, examine

        evidence = examine(ExamineOptions(
            suspect=suspect, key=key, texts=texts, scheme=scheme, version=version, tokenizer=tokenizer,
            canaries=canaries, decoys=decoys, model=model, api_key=api_key, max_tokens=max_tokens, alpha=alpha,
            ours=ours, reference=reference, prompts=prompts, our_model=our_model, plain_texts=plain_texts))
        data = evidence.write(out_dir)
        out.print(f"{data['conclusion']}\n→ {out_dir / 'evidence.json'}, {out_dir / 'evidence.html'}")
