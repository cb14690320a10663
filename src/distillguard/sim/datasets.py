"""Real public prompt datasets the simulator draws its content from.

The datasets live outside the package (``shared/data`` beside the project, see
its INDEX.md for licences); they are found through ``--data-dir``, the
``DISTILLGUARD_DATA_DIR`` variable, or ``../shared/data`` above the working
directory or the source tree.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from distillguard.errors import InputError

_CALC = re.compile(r"<<[^>]*>>")


@dataclass(frozen=True)
class Pools:
    """Prompt pools, each a sequence (a tuple as loaded) of dicts with at least ``prompt``."""

    math: Sequence[dict[str, Any]]  # prompt, solution, answer
    code: Sequence[dict[str, Any]]  # prompt, solution
    tools: Sequence[dict[str, Any]]  # prompt, functions (JSON schemas)
    instructions: Sequence[dict[str, Any]]  # prompt, output, app
    chat: Sequence[dict[str, Any]]  # prompt, followups, category
    jailbreak: Sequence[dict[str, Any]]  # prompt
    sensitive: Sequence[dict[str, Any]]  # prompt, category


def find_data_dir(explicit: Path | None = None) -> Path:
    """The datasets folder, or an ``InputError`` saying where it was looked for."""
    candidates = [explicit] if explicit else []
    if os.environ.get("DISTILLGUARD_DATA_DIR"):
        candidates.append(Path(os.environ["DISTILLGUARD_DATA_DIR"]))
    for base in (Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents):
        candidates.append(base / "shared" / "data")
        candidates.append(base.parent / "shared" / "data")
    for c in candidates:
        if c is not None and (c / "gsm8k" / "train.jsonl").is_file():
            return c
    raise InputError(
        "public prompt datasets not found: pass --data-dir or set DISTILLGUARD_DATA_DIR "
        "to the shared/data folder (it holds gsm8k/, mbpp/, bfcl/, ...)"
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


@cache
def load_pools(data_dir: Path) -> Pools:
    """Read every dataset once per process."""
    try:
        return _load(data_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read prompt datasets in {data_dir}: {exc}") from exc


def _load(d: Path) -> Pools:
    math = []
    for r in _jsonl(d / "gsm8k" / "train.jsonl"):
        steps, _, final = r["answer"].rpartition("####")
        math.append({"prompt": r["question"], "solution": _CALC.sub("", steps).strip(),
                     "answer": final.strip()})
    code = [{"prompt": r["text"], "solution": r["code"].replace("\r\n", "\n"),
             "tests": r.get("test_list", [])} for r in _jsonl(d / "mbpp" / "mbpp.jsonl")]
    code += [{"prompt": r["prompt"], "solution": r["prompt"] + r["canonical_solution"]}
             for r in _jsonl(d / "humaneval" / "HumanEval.jsonl.gz")]
    tools = []
    for path in sorted((d / "bfcl").glob("BFCL_v4_*.json")):
        if "irrelevance" in path.name:
            continue
        for r in _jsonl(path):
            turns = r.get("question") or []
            first = turns[0] if turns and isinstance(turns[0], list) else turns
            text = next((m["content"] for m in first if m.get("role") == "user"), None)
            if text and r.get("function"):
                defs = [{"type": "function", "function": {
                    "name": f["name"], "description": f.get("description", ""),
                    "parameters": {**f.get("parameters", {}), "type": "object"}}} for f in r["function"]]
                tools.append({"prompt": text, "functions": r["function"], "tools": defs})
    instructions = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for r in _jsonl(d / "self_instruct" / name):
            inst = (r.get("instances") or [{}])[0]
            prompt = r["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
            instructions.append({"prompt": prompt, "output": inst.get("output") or "",
                                 "app": r.get("motivation_app") or ""})
    chat = []
    for name in ("mt_bench_question.jsonl", "vicuna_bench_question.jsonl"):
        for r in _jsonl(d / "fastchat_bench" / name):
            chat.append({"prompt": r["turns"][0], "followups": r["turns"][1:],
                         "category": r.get("category", "")})
    jailbreak, sensitive = [], []
    with open(d / "jailbreak_llms" / "jailbreak_prompts_2023_05_07.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r.get("prompt") and len(r["prompt"]) < 6000:
                jailbreak.append({"prompt": r["prompt"]})
    with open(d / "jailbreak_llms" / "forbidden_question_set.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            sensitive.append({"prompt": r["question"], "category": r["content_policy_name"]})
    return Pools(tuple(math), tuple(code), tuple(tools), tuple(instructions), tuple(chat),
                 tuple(jailbreak), tuple(sensitive))
