"""A model's answers to prompts, greedy and batched; reading prompt files; comparing answers.

Evaluation and the similarity test decode hundreds of prompts per model, so
prompts are batched (sorted by length to waste little padding) through the
model server's own decoding loop: on 2 CPU cores an order of magnitude faster
than one prompt at a time, and greedy decoding gives the same answers either
way (a test checks it).

>>> normalize(" 1,234. "), normalize('{"b": 1, "a": 2}')
('1234', '{"a":2,"b":1}')
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from distillguard.errors import InputError
from distillguard.models.generate import Channels, Model, Row, Sampling

Progress = Callable[[int, int], None]


def answers(model: Model, prompts: Sequence[str], *, max_tokens: int = 160, batch: int = 64,
            progress: Progress | None = None) -> list[tuple[str, str]]:
    """(answer, reasoning) of ``model`` for each prompt, greedy, in the order given."""
    encoded = [model.prompt_ids([{"role": "user", "content": p}]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    out: list[tuple[str, str]] = [("", "")] * len(prompts)
    for start in range(0, len(order), batch):
        chunk = [i for i in order[start:start + batch] if len(encoded[i]) < model.context]
        rows = [Row(encoded[i], Sampling(max_tokens=min(max_tokens, model.context - len(encoded[i])),
                                         temperature=0)) for i in chunk]
        channels = [Channels(model.tokenizer) for _ in chunk]
        for events in model.decode(rows):
            for row, token in events:
                if token is not None:
                    channels[row].feed(token)
        for i, ch in zip(chunk, channels, strict=True):
            out[i] = (ch.text("content").strip(), ch.text("reasoning_content").strip())
        if progress:
            progress(min(start + batch, len(prompts)), len(prompts))
    return out



def normalize(text: str | None) -> str:
    """Answers compare without spaces, case, trailing periods or thousands separators."""
    text = (text or "").strip().lower().rstrip(".")
    if text.startswith("{"):
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            pass
    return re.sub(r"(?<=\d),(?=\d{3})|\s+", "", text)


def read_prompts(path: Path) -> list[str]:
    """Prompts from a JSONL file of ``{"prompt": ...}`` (or ``{"text": ...}``) objects, or plain lines."""
    prompts = []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the prompt pool {path}: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = orjson.loads(line)
                prompts.append(str(row.get("prompt") or row["text"]))
            except (orjson.JSONDecodeError, KeyError) as exc:
                raise InputError(f"{path}:{n}: expected {{\"prompt\": ...}} ({exc})") from exc
        else:
            prompts.append(line)
    return prompts
