"""``distillguard watermark ...``: make keys, and test texts for a watermark with exact p-values.

The commands import the schemes (torch, transformers: the ``lab`` extra) only
when they run, so the rest of the CLI works without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from distillguard._cli_support import errors, out, require_lab
from distillguard.errors import ConfigError, InputError

watermark = typer.Typer(help="Watermark keys and detection (exact p-values).", no_args_is_help=True)


@watermark.command("keygen")
def keygen(
    scheme: Annotated[str, typer.Option(help="greenlist or tournament.")],
    version: Annotated[str, typer.Option(help="Key version recorded wherever the key is used.")],
    out_file: Annotated[Path, typer.Option("--out", help="Keyring file to add the key to (created if absent).")]
    = Path("watermark-keys.json"),
) -> None:
    """Add a fresh random key to a keyring file (serve it with `lab serve --watermark-keys`).

    Example: distillguard watermark keygen --scheme greenlist --version 2026-11-a --out keys.json
    """
    from distillguard.watermark.keyfile import BUILT_IN, check_records, fresh_key, read_records, write_records

    with errors():
        records = read_records(out_file) if out_file.is_file() else []
        if scheme in BUILT_IN:  # a random integer: no need to load torch and transformers (seconds) to make it
            record = fresh_key(scheme, version)
        else:  # a plugin scheme checks its own key
            require_lab()
            from distillguard.watermark.keyring import new_key  # the lab extra: see the module docstring

            record = new_key(scheme, version)
        records.append(record)
        check_records(records)  # rejects a duplicate version before writing
        write_records(out_file, records)
        out.print(f"{scheme} key {version} added to {out_file} (keep this file secret)")


@watermark.command("detect")
def detect(
    texts: Annotated[Path, typer.Argument(help='JSONL, one {"text": ...} per line (optional "prompt").')],
    scheme: Annotated[str, typer.Option(help="greenlist or tournament.")],
    key: Annotated[str, typer.Option(help="An integer key, a JSON object, or a key/keyring file.")],
    tokenizer: Annotated[Path, typer.Option(help="A local Hugging Face tokenizer (or model) directory.")],
    version: Annotated[str | None, typer.Option(help="With a keyring file: which key version.")] = None,
    vocab_size: Annotated[int | None, typer.Option(help="The model's vocabulary size (default: the directory's "
                                                        "config.json, else the tokenizer's).")] = None,
) -> None:
    """Print one JSON object per text: statistic, p_value (exact), n_scored, method.

    Example: distillguard watermark detect answers.jsonl --scheme greenlist --key keys.json --version v1 \\
    --tokenizer lab-out/teacher
    """
    with errors():
        require_lab()
        from distillguard.models.load import load_tokenizer  # the lab extra: see the module docstring
        from distillguard.watermark.base import load_scheme, model_vocab, read_texts
        from distillguard.watermark.keyring import Keyring

        if version is not None:
            chosen = Keyring.load(Path(key)).scheme(version)
            if chosen.name != scheme:
                raise ConfigError(f"key version {version} is a {chosen.name} key, not {scheme}")
        else:
            chosen = load_scheme(scheme, key)
        try:
            tok = load_tokenizer(tokenizer)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load a tokenizer from {tokenizer}: {exc}") from exc
        vocab = vocab_size or model_vocab(tokenizer, tok)
        for row in read_texts(texts):
            prompt = tok(row["prompt"] or "", add_special_tokens=False)["input_ids"]
            result = chosen.detect(tok(row["text"], add_special_tokens=False)["input_ids"], vocab, prompt_ids=prompt)
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
