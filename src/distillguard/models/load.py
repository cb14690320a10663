"""Loading local Hugging Face causal LMs and tokenizers: from a directory, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from distillguard.errors import InputError
from distillguard.models.generate import Model


def load_model(path: Path | str, name: str | None = None) -> Model:
    """A causal LM and its chat tokenizer from a local directory, ready to decode (``InputError`` if not)."""
    path = _model_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the model at {path}: {exc}") from exc
    if tokenizer.chat_template is None:
        raise InputError(f"the tokenizer at {path} has no chat template")
    return Model(name or path.name, model, tokenizer)


def load_causal_lm(path: Path | str) -> PreTrainedModel:
    """The causal LM of a local directory, in evaluation mode."""
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(_model_dir(path), local_files_only=True)
    model.eval()  # type: ignore[no-untyped-call]
    return model


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local directory."""
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tokenizer


def _model_dir(path: Path | str) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"no model at {path}: expected a Hugging Face model directory with config.json")
    return path
