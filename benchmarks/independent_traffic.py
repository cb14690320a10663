"""Independent labelled traffic generator (exchange-log spec), for honest generalization checks.

Written from the public description of distillation campaigns and from how API customers
behave, without reference to distillguard's own simulator or detectors. One seed fixes a
*world* (benign customers, campaigns with tactics drawn at random, infrastructure, model
releases); ``--period`` renders the current window or an earlier, non-overlapping one in which
the same actors were active; ``--benign-only`` drops the campaigns' traffic.

Example::

    python benchmarks/independent_traffic.py --seed 1 --out /tmp/ind/cur
    python benchmarks/independent_traffic.py --seed 1 --out /tmp/ind/prev --period previous
    python benchmarks/independent_traffic.py --seed 1 --out /tmp/ind/vetted --period previous --benign-only

Prompt content comes from the public datasets in ``shared/data`` (gsm8k, mbpp, humaneval,
bfcl, fastchat_bench, self_instruct, jailbreak_llms) and from phrasings written here.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import re
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - the project venv has orjson

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


Rng = np.random.Generator
T = TypeVar("T")
DAY = 86400.0
HOUR = 3600.0
BIN = 300.0  # seconds per bin of the time-intensity grids
INF = float("inf")

# ------------------------------------------------------------------ small helpers


def pick(rng: Rng, seq: Sequence[T]) -> T:
    """One element of ``seq``, uniformly."""
    return seq[int(rng.integers(len(seq)))]


def wpick(rng: Rng, weights: dict[str, float]) -> str:
    """A key of ``weights`` drawn with those weights."""
    if len(weights) == 1:
        return next(iter(weights))
    x = rng.random() * sum(weights.values())
    for key, w in weights.items():
        x -= w
        if x < 0:
            return key
    return key


def chance(rng: Rng, p: float) -> bool:
    """True with probability ``p``."""
    return bool(rng.random() < p)


def logu(rng: Rng, lo: float, hi: float) -> float:
    """Log-uniform draw in [lo, hi]."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def hexid(rng: Rng, n: int = 8) -> str:
    """Random lowercase hex string of ``n`` digits (n <= 13)."""
    return f"{int(rng.integers(16**n)):0{n}x}"


def tok(text: str | None) -> int:
    """Rough token count of a text (4 characters a token)."""
    return 0 if not text else len(text) // 4 + 1


_FMT = string.Formatter()


def fill(rng: Rng, template: str, slots: dict[str, Sequence[str]]) -> str:
    """Fill every ``{name}`` of ``template`` with a random value from ``slots[name]``."""
    names = dict.fromkeys(f for _, f, _, _ in _FMT.parse(template) if f)
    return template.format(**{n: pick(rng, slots[n]) for n in names})


# ------------------------------------------------------------------ infrastructure tables

RESIDENTIAL = [
    (7922, "US"), (7018, "US"), (701, "US"), (20115, "US"), (22773, "US"), (5650, "US"), (812, "CA"),
    (3320, "DE"), (2856, "GB"), (5089, "GB"), (3215, "FR"), (12322, "FR"), (3352, "ES"), (3269, "IT"),
    (1136, "NL"), (5617, "PL"), (3301, "SE"), (4713, "JP"), (2516, "JP"), (4766, "KR"), (9506, "SG"),
    (4760, "HK"), (3462, "TW"), (24560, "IN"), (1221, "AU"), (28573, "BR"), (8151, "MX"), (7552, "VN"),
    (7713, "ID"), (9121, "TR"),
]  # fmt: skip
MOBILE = [(21928, "US"), (22394, "US"), (20057, "US"), (6805, "DE"), (45609, "IN"), (17676, "JP")]
DATACENTER = [
    (16509, "US"), (14618, "US"), (396982, "US"), (8075, "US"), (14061, "US"), (16276, "FR"), (24940, "DE"),
    (63949, "US"), (20473, "US"), (31898, "US"), (45102, "SG"), (132203, "SG"),
]  # fmt: skip
VPN_HOSTING = [(9009, "GB"), (212238, "NL"), (60068, "US"), (136787, "SG"), (62240, "GB")]
UNIVERSITY = [(3, "US"), (25, "US"), (32, "US"), (786, "GB"), (680, "DE"), (2200, "FR"), (7575, "AU"), (2907, "JP")]
TZ = {
    "US": -6.0, "CA": -5.0, "DE": 1.0, "GB": 0.0, "FR": 1.0, "ES": 1.0, "IT": 1.0, "NL": 1.0, "PL": 1.0,
    "SE": 1.0, "JP": 9.0, "KR": 9.0, "SG": 8.0, "HK": 8.0, "TW": 8.0, "IN": 5.5, "AU": 10.0, "BR": -3.0,
    "MX": -6.0, "VN": 7.0, "ID": 7.0, "TR": 3.0, "CN": 8.0,
}  # fmt: skip
FIRST_OCTETS = [
    23, 24, 31, 37, 45, 50, 62, 66, 71, 73, 76, 77, 79, 81, 82, 84, 86, 88, 89, 90, 91, 92, 93, 94, 95, 98,
    99, 104, 107, 108, 109, 118, 121, 124, 125, 134, 141, 146, 151, 153, 157, 160, 163, 165, 168, 173, 174,
    176, 178, 180, 182, 183, 185, 188, 190, 193, 194, 195, 197, 200, 201, 202, 209, 211, 212, 213, 217, 218,
]  # fmt: skip
SDKS: dict[str, tuple[str, list[str]]] = {
    "openai-python": ("OpenAI/Python {v}", ["1.35.10", "1.40.6", "1.51.2", "1.54.4", "1.58.1", "1.61.0"]),
    "openai-node": ("OpenAI/JS {v}", ["4.52.7", "4.67.3", "4.77.0"]),
    "anthropic-python": ("Anthropic/Python {v}", ["0.34.2", "0.39.0", "0.42.0"]),
    "anthropic-ts": ("Anthropic/JS {v}", ["0.27.3", "0.32.1"]),
    "requests": ("python-requests/{v}", ["2.31.0", "2.32.3"]),
    "httpx": ("python-httpx/{v}", ["0.27.0", "0.27.2"]),
    "aiohttp": ("Python/3.11 aiohttp/{v}", ["3.9.5", "3.10.10"]),
    "curl": ("curl/{v}", ["7.81.0", "8.5.0", "8.7.1"]),
    "go": ("Go-http-client/{v}", ["1.1", "2.0"]),
    "java": ("Java-http-client/{v}", ["17.0.9", "21.0.2"]),
    "litellm": ("litellm/{v}", ["1.48.2", "1.52.9"]),
}
SDK_SHAPES = {
    "openai-python": {"chat": 0.8, "responses": 0.2}, "openai-node": {"chat": 0.85, "responses": 0.15},
    "anthropic-python": {"messages": 1.0}, "anthropic-ts": {"messages": 1.0}, "requests": {"chat": 1.0},
    "httpx": {"chat": 0.9, "completions": 0.1}, "aiohttp": {"chat": 1.0}, "curl": {"chat": 0.9, "messages": 0.1},
    "go": {"chat": 1.0}, "java": {"chat": 1.0}, "litellm": {"chat": 1.0},
}  # fmt: skip
WEBMAIL = ["gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hotmail.com"]
DISPOSABLE = ["tmpbox.net", "quickinbox.io", "mailnest.xyz", "dropmail.cc", "fastmail-temp.org", "inboxkitten.top"]
WORDS = [
    "blue", "north", "pixel", "stone", "river", "delta", "quant", "nova", "bright", "cedar", "lumen", "atlas",
    "orbit", "forge", "harbor", "maple", "signal", "vector", "summit", "tidal", "zen", "apex", "metro", "coral",
]  # fmt: skip
FAMILIES = ["orion", "vega", "lumen", "atlas", "nimbus"]

# ------------------------------------------------------------------ corpus


@dataclass
class Corpus:
    """Public prompt datasets, loaded once."""

    gsm8k: list[tuple[str, str]]
    humaneval: list[tuple[str, str, str]]
    mbpp: list[tuple[str, str, list[str]]]
    instructions: list[tuple[str, str, str | None]]
    mtbench: list[tuple[str, list[str]]]
    vicuna: list[str]
    bfcl: list[tuple[str, list[dict[str, Any]]]]
    fs_tasks: list[list[str]]
    forbidden: list[tuple[str, str]]
    jailbreaks: list[str]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _schema(node: Any) -> Any:
    """BFCL parameter schemas use Python type names; rewrite them to JSON Schema."""
    names = {"dict": "object", "float": "number", "tuple": "array", "any": "string", "list": "array"}
    if isinstance(node, dict):
        out = {k: _schema(v) for k, v in node.items()}
        if isinstance(out.get("type"), str):
            out["type"] = names.get(out["type"], out["type"])
        return out
    if isinstance(node, list):
        return [_schema(v) for v in node]
    return node


def _load_bfcl(folder: Path) -> tuple[list[tuple[str, list[dict[str, Any]]]], list[list[str]]]:
    items: list[tuple[str, list[dict[str, Any]]]] = []
    fs_tasks: list[list[str]] = []
    for path in sorted(folder.glob("BFCL_v4_*.json")):
        for row in _jsonl(path):
            turns = [m["content"] for turn in row["question"] for m in turn if m.get("role") == "user"]
            if "function" in row and turns:
                funcs = [{k: _schema(v) for k, v in f.items()} for f in row["function"]]
                items.append((turns[0], funcs))
            elif turns:
                fs_tasks.append(turns)
    return items, fs_tasks


def load_corpus(data_dir: Path) -> Corpus:
    """Read every dataset the generator draws prompts from."""
    instr: list[tuple[str, str, str | None]] = []
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for r in _jsonl(data_dir / "self_instruct" / name):
            inp = r["instances"][0].get("input", "") if r.get("instances") else ""
            instr.append((r["instruction"], inp, r.get("motivation_app")))
    bfcl, fs_tasks = _load_bfcl(data_dir / "bfcl")
    with open(data_dir / "jailbreak_llms" / "forbidden_question_set.csv", encoding="utf-8") as fh:
        forbidden = [(r["content_policy_name"], r["question"]) for r in csv.DictReader(fh)]
    with open(data_dir / "jailbreak_llms" / "jailbreak_prompts_2023_05_07.csv", encoding="utf-8") as fh:
        jbs = [r["prompt"] for r in csv.DictReader(fh) if r["jailbreak"] == "True" and len(r["prompt"]) < 2500]
    return Corpus(
        gsm8k=[(r["question"], r["answer"]) for r in _jsonl(data_dir / "gsm8k" / "train.jsonl")],
        humaneval=[
            (r["prompt"], r["canonical_solution"], r["entry_point"])
            for r in _jsonl(data_dir / "humaneval" / "HumanEval.jsonl.gz")
        ],
        mbpp=[
            (r["text"], r["code"].replace("\r\n", "\n"), r["test_list"])
            for r in _jsonl(data_dir / "mbpp" / "mbpp.jsonl")
        ],
        instructions=instr,
        mtbench=[(r["category"], r["turns"]) for r in _jsonl(data_dir / "fastchat_bench" / "mt_bench_question.jsonl")],
        vicuna=[r["turns"][0] for r in _jsonl(data_dir / "fastchat_bench" / "vicuna_bench_question.jsonl")],
        bfcl=bfcl,
        fs_tasks=fs_tasks,
        forbidden=forbidden,
        jailbreaks=jbs,
    )


# ------------------------------------------------------------------ phrasings written here

SLOTS: dict[str, Sequence[str]] = {
    "dish": ["lasagna", "vegan curry", "banana bread", "pad thai", "chili", "risotto", "shakshuka", "ramen"],
    "n": ["2", "3", "4", "5", "6", "7", "10"],
    "tone": ["polite", "firm", "friendly", "formal", "apologetic", "short"],
    "person": ["landlord", "boss", "neighbour", "teacher", "sister", "client", "coach", "roommate"],
    "topic": ["the broken heater", "my vacation days", "the project delay", "rent", "a refund", "the party"],
    "concept": ["inflation", "black holes", "compound interest", "vaccines", "blockchain", "photosynthesis",
                "quantum entanglement", "the stock market", "machine learning", "climate change"],
    "concept2": ["deflation", "neutron stars", "simple interest", "antibiotics", "databases", "respiration"],
    "city": ["Lisbon", "Tokyo", "Mexico City", "Prague", "Seoul", "Montreal", "Cape Town", "Hanoi"],
    "event": ["birthday", "retirement", "baby shower", "graduation", "halloween", "office"],
    "skill": ["public speaking", "chess", "drawing", "running", "negotiating", "writing", "cooking"],
    "debate": ["remote work", "nuclear power", "a four-day work week", "homework", "electric cars"],
    "thing": ["the ocean", "autumn", "coffee", "my cat", "the city at night", "old friends", "rain"],
    "appliance": ["dishwasher", "fridge", "washing machine", "car", "laptop fan", "furnace"],
    "language": ["Spanish", "French", "German", "Japanese", "Portuguese", "Korean", "Italian"],
    "job": ["data analyst", "nurse", "product manager", "teacher", "software engineer", "accountant"],
    "book": ["Dune", "The Martian", "Pride and Prejudice", "Sapiens", "The Hobbit", "Atomic Habits"],
    "food": ["an avocado", "a bagel with cream cheese", "a bowl of pho", "a protein bar", "two eggs"],
    "color": ["red", "orange", "pink", "purple"],
    "task": ["make a pivot table", "remove duplicates", "use VLOOKUP", "freeze the top row", "make a chart"],
    "goal": ["lose weight", "build muscle", "run a 5k", "improve flexibility"],
    "ingredients": ["rice, eggs and spinach", "chicken, lemon and potatoes", "tofu and broccoli", "pasta and tuna"],
    "game": ["cricket", "mahjong", "bridge", "go", "rugby", "pickleball"],
    "choice": ["renting vs buying", "a Mac vs a PC", "grad school", "freelancing", "leasing a car"],
    "pet": ["golden retriever", "cat", "parrot", "hamster"],
}  # fmt: skip
CHAT_TEMPLATES = [
    "What's a good {dish} recipe for {n} people?", "Can you help me write a {tone} email to my {person} about {topic}?",
    "Explain {concept} like I'm five.", "Plan a {n}-day trip to {city} on a budget.",
    "What is the difference between {concept} and {concept2}?", "Give me {n} ideas for a {event} party.",
    "How do I get better at {skill}?", "Summarize the main arguments for and against {debate}.",
    "Write a short poem about {thing}.", "My {appliance} is making a weird noise, what could it be?",
    "Translate 'I will be late for the meeting tomorrow' into {language}.", "what should I name my {pet}",
    "Help me prepare for a job interview as a {job}.", "Recommend some books similar to {book}.",
    "How many calories are in {food}?", "Write a birthday message for my {person} who loves {thing}.",
    "Why is the sky {color} at sunset?", "How do I {task} in Excel?",
    "Make a weekly workout plan for a beginner who wants to {goal}.", "I have {ingredients}. What can I cook?",
    "Explain the rules of {game}.", "What are the pros and cons of {choice}?",
    "is {concept} actually a big deal or is it overhyped", "tell me a fun fact about {thing}",
]  # fmt: skip
CODE_FOLLOWUPS = [
    "can you add type hints?", "it throws {err}", "make it faster", "explain it line by line", "now write tests for it",
    "what if the input is empty?", "can you do it without recursion?",
]  # fmt: skip
MATH_FOLLOWUPS = [
    "why do you divide there?",
    "can you check the answer again?",
    "explain the second step",
    "is there a faster way?",
    "what if it was {n} instead?",
]
FOLLOWUPS = [
    "Can you make it shorter?", "Thanks! Can you give me another example?", "Explain that last part again please",
    "Can you put that in a table?", "ok, and what if I only have {n} days?", "Now translate it into {language}.",
    "Make it more {tone}.", "why?", "Great, can you add a few more details?", "That doesn't seem right, are you sure?",
]  # fmt: skip
PROSE = [
    "Here is a quick overview of {topic}.", "The short answer is that it depends on a few factors.",
    "First, consider what you are trying to achieve.", "A common approach is to start small and iterate.",
    "Keep in mind that {topic} can vary a lot from case to case.",
    "Many people find it helpful to write down the key points before starting.",
    "If you want, I can go into more detail on any of these steps.",
    "Another option is to compare a couple of alternatives side by side.",
    "In practice, the most important thing is consistency.", "To summarize: focus on the essentials, then refine.",
    "- Start with the basics and build from there.", "- Set aside a fixed time each week.",
    "- Ask for feedback early.", "One thing to watch out for is overcomplicating {topic}.",
    "There are three main points worth knowing.", "Let me know if you want a more detailed version.",
]  # fmt: skip
REASON = [
    "Let me work through this carefully.", "First, I need to identify what is being asked.",
    "The key quantities are given in the statement.", "Let me check this step again.",
    "So the intermediate result is {x}.", "Wait, I should double-check that.", "That gives {x}, which seems plausible.",
    "Now combine the pieces.", "An alternative is to reason backwards from the goal.",
    "Hmm, that contradicts the earlier step, so let me redo it.", "Consider the edge cases as well.",
    "So far so good; the remaining part is straightforward.", "Let me restate the problem in my own words.",
]  # fmt: skip
CODE_ERRORS = [
    "TypeError: 'NoneType' object is not subscriptable", "IndexError: list index out of range",
    "KeyError: 'id'", "RecursionError: maximum recursion depth exceeded", "ValueError: too many values to unpack",
    "AttributeError: 'dict' object has no attribute 'items_'", "ZeroDivisionError: division by zero",
]  # fmt: skip
DEV_ASKS = [
    "Why do I get `{err}` here?\n```python\n{code}\n```",
    "Can you refactor this to be more readable?\n```python\n{code}\n```",
    "Write pytest unit tests for this function:\n```python\n{code}\n```",
    "Convert this to TypeScript:\n```python\n{code}\n```",
    "What's the time complexity of this?\n```python\n{code}\n```", "{text} Use Python 3.11 and type hints.",
    "add docstrings and type hints\n\n{code}", "This is too slow on large inputs, how can I speed it up?\n{code}",
]  # fmt: skip
STUDENT_MATH = [
    "can you explain how to solve this step by step? {q}", "{q} how do i do this",
    "I got {x} for this, is that right? {q}",
    "Help me understand this homework problem: {q}", "{q}\nexplain like a tutor pls", "what's the method for: {q}",
]  # fmt: skip
STUDENT_CODE = [
    "how do i write a python function to {t}", "my teacher wants us to {t} in python, where do i start?",
    "{t}. I'm a beginner, please explain each line.", "why doesn't my code work, the task is to {t}\n\n{code}",
]  # fmt: skip

# ------------------------------------------------------------------ requests and responses


@dataclass(frozen=True)
class Msg:
    """One message of a conversation, independent of the API shape it is sent in."""

    role: str
    text: str | None = None
    images: tuple[str, ...] = ()
    calls: tuple[tuple[str, str, str], ...] = ()
    call_id: str | None = None


@dataclass
class Req:
    """A request before it is rendered into one of the API shapes."""

    msgs: list[Msg]
    system: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int = 1024
    n: int = 1
    stream: bool = False
    effort: str | None = None
    json_mode: bool = False
    sys_role: str = "system"
    stop: list[str] | None = None


@dataclass
class Resp:
    """What the model answered."""

    text: str | None
    reasoning: str | None = None
    calls: tuple[tuple[str, str, str], ...] = ()
    hidden_reasoning: int = 0


@dataclass
class Ex:
    """One exchange before rendering: when, what, on which model."""

    t: float
    req: Req
    resp: Resp
    model: str
    conv: str | None = None
    shape: str | None = None


def _prose(rng: Rng, topic: str, n: int) -> str:
    words = " ".join(topic.split()[:6]).strip(" ?.!") or "this"
    return " ".join(pick(rng, PROSE).format(topic=words) for _ in range(n))


def _reasoning(rng: Rng, n: int) -> str:
    return " ".join(pick(rng, REASON).format(x=int(rng.integers(2, 500))) for _ in range(n))


def _math_solution(answer: str, cot: bool) -> str:
    steps = re.sub(r"<<[^>]*>>", "", answer).split("\n")
    final = steps[-1].replace("####", "").strip()
    if not cot:
        return f"The answer is {final}."
    return "\n".join(s for s in steps[:-1] if s) + f"\nThe answer is {final}."


def _answer(rng: Rng, task: Task, cot: bool, effort: str | None, json_mode: bool = False) -> Resp:
    """A plausible answer to ``task`` (the text matters less than its shape and size)."""
    if task.kind == "math" and task.payload:
        text = _math_solution(task.payload, cot)
    elif task.kind == "math":
        text = _reasoning(rng, 6) + f" The answer is {int(rng.integers(2, 900))}." if cot else "The answer is 42."
    elif task.kind == "code":
        code = task.payload or "def solve(data):\n    return sorted(set(data))\n"
        intro = _reasoning(rng, 4) + "\n\n" if cot else "Here's an implementation:\n\n"
        text = f"{intro}```python\n{code.strip()}\n```\n\n{_prose(rng, task.text, 1)}"
    elif task.kind == "refuse":
        text = "I can't help with that. " + _prose(rng, task.text, 2)
    elif task.kind == "json":
        text = task.payload or json.dumps(
            {"label": pick(rng, ["billing", "bug", "account", "other"]), "confidence": 0.9}
        )
    else:
        text = (_reasoning(rng, 3) + "\n\n" if cot else "") + _prose(rng, task.text, int(rng.integers(2, 7)))
    if json_mode and task.kind != "json":
        text = json.dumps({"reasoning": _reasoning(rng, 5) if cot else "", "answer": text})
    reasoning = _reasoning(rng, {"low": 4, "medium": 9, "high": 18}[effort]) if effort else None
    return Resp(text=text, reasoning=reasoning)


@dataclass
class Task:
    """A user request: its text, what kind of answer it gets, and data for the answer."""

    text: str
    kind: str = "general"
    payload: str | None = None
    images: tuple[str, ...] = ()


# ------------------------------------------------------------------ rendering to API shapes

ENDPOINT = {
    "chat": "/v1/chat/completions", "responses": "/v1/responses",
    "messages": "/v1/messages", "completions": "/v1/completions",
}  # fmt: skip


def _chat_content(m: Msg) -> Any:
    if not m.images:
        return m.text
    return [{"type": "text", "text": m.text}] + [{"type": "image_url", "image_url": {"url": u}} for u in m.images]


def render_chat(req: Req, model: str) -> dict[str, Any]:
    """OpenAI Chat Completions request body."""
    msgs: list[dict[str, Any]] = [{"role": req.sys_role, "content": req.system}] if req.system is not None else []
    for m in req.msgs:
        if m.role == "tool":
            msgs.append({"role": "tool", "tool_call_id": m.call_id, "content": m.text})
        elif m.calls:
            calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in m.calls]
            msgs.append({"role": "assistant", "content": m.text, "tool_calls": calls})
        else:
            msgs.append({"role": m.role, "content": _chat_content(m)})
    body: dict[str, Any] = {"model": model, "messages": msgs, "max_tokens": req.max_tokens}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.n > 1:
        body["n"] = req.n
    if req.stream:
        body["stream"] = True
    if req.tools:
        body["tools"] = [{"type": "function", "function": t} for t in req.tools]
    if req.effort:
        body["reasoning_effort"] = req.effort
    if req.json_mode:
        body["response_format"] = {"type": "json_object"}
    if req.stop:
        body["stop"] = req.stop
    return body


def _anthropic_message(m: Msg) -> dict[str, Any]:
    if m.calls:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": m.text}] if m.text else []
        blocks += [{"type": "tool_use", "id": i, "name": n, "input": json.loads(a)} for i, n, a in m.calls]
        return {"role": "assistant", "content": blocks}
    if not m.images:
        return {"role": m.role, "content": m.text}
    parts: list[dict[str, Any]] = []
    for u in m.images:
        src = (
            {"type": "url", "url": u}
            if u.startswith("http")
            else {"type": "base64", "media_type": "image/png", "data": u.split(",", 1)[-1]}
        )
        parts.append({"type": "image", "source": src})
    return {"role": m.role, "content": [*parts, {"type": "text", "text": m.text}]}


def render_messages(req: Req, model: str) -> dict[str, Any]:
    """Anthropic Messages request body."""
    msgs: list[dict[str, Any]] = []
    for m in req.msgs:
        if m.role != "tool":
            msgs.append(_anthropic_message(m))
            continue
        block = {"type": "tool_result", "tool_use_id": m.call_id, "content": m.text}
        last = msgs[-1] if msgs else None
        if last and last["role"] == "user" and isinstance(last["content"], list):
            last["content"].append(block)
        else:
            msgs.append({"role": "user", "content": [block]})
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens, "messages": msgs}
    if req.system is not None:
        body["system"] = req.system
    if req.temperature is not None and not req.effort:
        body["temperature"] = min(req.temperature, 1.0)
    if req.tools:
        body["tools"] = [
            {"name": t["name"], "description": t.get("description", ""), "input_schema": t["parameters"]}
            for t in req.tools
        ]
    if req.effort:
        budget = {"low": 2048, "medium": 8000, "high": 24000}[req.effort]
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] = max(req.max_tokens, budget + 4096)
    if req.stream:
        body["stream"] = True
    if req.stop:
        body["stop_sequences"] = req.stop
    return body


def _responses_items(req: Req) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in req.msgs:
        if m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.call_id, "output": m.text})
        elif m.calls:
            if m.text:
                items.append({"role": "assistant", "content": m.text})
            items += [{"type": "function_call", "call_id": i, "name": n, "arguments": a} for i, n, a in m.calls]
        elif m.role == "user":
            content = [{"type": "input_text", "text": m.text}]
            content += [{"type": "input_image", "image_url": u} for u in m.images]
            items.append({"role": "user", "content": content})
        else:
            items.append({"role": m.role, "content": m.text})
    return items


def render_responses(req: Req, model: str) -> dict[str, Any]:
    """OpenAI Responses request body."""
    only = req.msgs[0] if len(req.msgs) == 1 else None
    simple = only is not None and only.role == "user" and not only.images
    body: dict[str, Any] = {"model": model, "input": only.text if simple and only else _responses_items(req)}
    body["max_output_tokens"] = req.max_tokens
    if req.system is not None:
        body["instructions"] = req.system
    if req.tools:
        body["tools"] = [{"type": "function", **t} for t in req.tools]
    if req.effort:
        body["reasoning"] = {"effort": req.effort, "summary": "auto"}
    if req.temperature is not None and not req.effort:
        body["temperature"] = req.temperature
    if req.json_mode:
        body["text"] = {"format": {"type": "json_object"}}
    if req.stream:
        body["stream"] = True
    return body


def render_completions(req: Req, model: str) -> dict[str, Any]:
    """Legacy text-completions request body (one prompt string)."""
    parts = ([req.system] if req.system else []) + [m.text or "" for m in req.msgs]
    body: dict[str, Any] = {"model": model, "prompt": "\n\n".join(parts), "max_tokens": req.max_tokens}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.n > 1:
        body["n"] = req.n
    if req.stop:
        body["stop"] = req.stop
    return body


RENDER: dict[str, Callable[[Req, str], dict[str, Any]]] = {
    "chat": render_chat, "responses": render_responses, "messages": render_messages, "completions": render_completions,
}  # fmt: skip


_TOOL_TOKENS: dict[int, tuple[list[dict[str, Any]], int]] = {}


def _tool_tokens(tools: list[dict[str, Any]]) -> int:
    """Tokens of a tool list (cached: the same list object is sent many times)."""
    hit = _TOOL_TOKENS.get(id(tools))
    if hit is None or hit[0] is not tools:
        hit = (tools, sum(tok(json.dumps(t)) for t in tools))
        _TOOL_TOKENS[id(tools)] = hit
    return hit[1]


def _input_tokens(req: Req) -> int:
    n = tok(req.system) + sum(
        tok(m.text) + 4 + 765 * len(m.images) + sum(tok(a) for _, _, a in m.calls) for m in req.msgs
    )
    return n + (_tool_tokens(req.tools) if req.tools else 0)


def response_row(rng: Rng, req: Req, resp: Resp, speed: float) -> dict[str, Any]:
    """The logged response of a served request."""
    out = tok(resp.text) + sum(tok(a) + 8 for _, _, a in resp.calls)
    rtok = tok(resp.reasoning) * 3 + resp.hidden_reasoning if resp.reasoning else resp.hidden_reasoning
    finish = "tool_calls" if resp.calls else ("length" if out >= req.max_tokens else "stop")
    calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in resp.calls]
    return {
        "status": 200,
        "finish_reason": finish,
        "content": resp.text,
        "reasoning_content": resp.reasoning,
        "tool_calls": calls,
        "usage": {"input_tokens": _input_tokens(req), "output_tokens": out * req.n + rtok, "reasoning_tokens": rtok},
        "latency_ms": int(rng.uniform(200, 1400) + (out + rtok) * speed),
    }


# ------------------------------------------------------------------ infrastructure


@dataclass
class IpSpace:
    """Deterministic /16 prefixes for every ASN the generator uses."""

    prefixes: dict[int, list[tuple[int, int]]]
    country: dict[int, str]

    @classmethod
    def build(cls, rng: Rng) -> IpSpace:
        used: set[tuple[int, int]] = set()
        prefixes: dict[int, list[tuple[int, int]]] = {}
        country: dict[int, str] = {}
        for asn, cc in RESIDENTIAL + MOBILE + DATACENTER + VPN_HOSTING + UNIVERSITY:
            prefixes[asn] = []
            country[asn] = cc
            while len(prefixes[asn]) < 4:
                p = (pick(rng, FIRST_OCTETS), int(rng.integers(256)))
                if p not in used:
                    used.add(p)
                    prefixes[asn].append(p)
        return cls(prefixes, country)

    def addr(self, rng: Rng, asn: int) -> tuple[str, int, str]:
        """A random address of ``asn`` with its country."""
        a, b = pick(rng, self.prefixes[asn])
        return f"{a}.{b}.{int(rng.integers(256))}.{int(rng.integers(1, 255))}", asn, self.country[asn]

    def addr6(self, rng: Rng, asn: int) -> tuple[str, int, str]:
        """A random IPv6 address of ``asn`` (residential dual-stack customers)."""
        a, b = self.prefixes[asn][0]
        return f"2a0{a % 10}:{b:x}{a:02x}:{hexid(rng, 4)}:{hexid(rng, 4)}::{hexid(rng, 3)}", asn, self.country[asn]


Addr = tuple[str, int, str]


@dataclass
class Net:
    """Where an account's requests come from."""

    mode: str  # home | office | campus | dc | pool | sticky
    main: list[Addr]
    alt: list[Addr] = field(default_factory=list)
    pool: list[Addr] | None = None

    def pick(self, rng: Rng, t: float, tz: float) -> Addr:
        """The address of a request at time ``t``."""
        if self.mode == "pool" and self.pool:
            return pick(rng, self.pool)
        if self.mode in ("office", "campus"):
            local = (t / HOUR + tz) % 24
            weekday = int((t / DAY + tz / 24 + 3) % 7) < 5
            at_site = weekday and 8.5 <= local <= 18.5
            if at_site or not self.alt:
                return pick(rng, self.main)
            return pick(rng, self.alt)
        if self.mode == "home":
            if self.alt and chance(rng, 0.08):
                return pick(rng, self.alt)
            return self.main[int(t // (9 * DAY)) % len(self.main)]
        if self.mode == "sticky":
            return self.main[int(t // (3 * DAY)) % len(self.main)]
        return pick(rng, self.main)


@dataclass
class Client:
    """The software an account calls the API with."""

    ua: str
    tls: str
    shapes: dict[str, float]


@dataclass
class Account:
    """One API account: its sign-up record, its behaviour and its infrastructure."""

    idx: int
    account_id: str
    created: float
    signup: str
    tier: str
    payment: str | None
    email_domain: str
    country: str
    org: str | None
    population: str
    behaviour: str
    start: float
    end: float
    rate: float
    net: Net
    client: Client
    keys: list[str]
    tz: float
    params: dict[str, Any] = field(default_factory=dict)
    campaign: int | None = None
    attack_from: float = -INF  # bought account: benign owner's traffic before this time

    def record(self) -> dict[str, Any]:
        """The spec's accounts row."""
        return {
            "account_id": self.account_id,
            "created_at": iso(self.created, ms=False),
            "signup_path": self.signup,
            "tier": self.tier,
            "payment_fingerprint": self.payment,
            "email_domain": self.email_domain,
            "country": self.country,
            "organization_id": self.org,
        }


def iso(t: float, ms: bool = True) -> str:
    """RFC 3339 UTC timestamp."""
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond // 1000:03d}Z" if ms else "Z")


@dataclass
class Models:
    """The provider's model line-up and its release times."""

    fam: str
    rel_mid: float
    rel_new: float
    born: float

    @property
    def old(self) -> str:
        return f"{self.fam}-2"

    @property
    def mini(self) -> str:
        return f"{self.fam}-2-mini"

    @property
    def mid(self) -> str:
        return f"{self.fam}-2.5"

    @property
    def new(self) -> str:
        return f"{self.fam}-3"

    @property
    def pinned(self) -> str:
        """A dated snapshot of the old flagship, which enterprises pin."""
        return f"{self.fam}-2-" + datetime.fromtimestamp(self.born - 40 * DAY, UTC).strftime("%Y-%m-%d")

    def releases(self) -> list[tuple[float, str]]:
        """Every release with its time."""
        return [
            (self.born - 40 * DAY, self.old),
            (self.born - 25 * DAY, self.mini),
            (self.rel_mid, self.mid),
            (self.rel_new, self.new),
        ]

    def speed(self, model: str) -> float:
        """Milliseconds per output token."""
        return 6.0 if "mini" in model else 14.0 if model.endswith("-3") else 10.0

    def benign(self, rng: Rng, a: Account, t: float) -> str:
        """The model an ordinary customer uses at ``t`` (each adopts releases at its own pace)."""
        p = a.params
        if p.get("pinned"):
            return self.pinned
        if chance(rng, p.get("mini", 0.2)):
            return self.mini
        current = self.old
        if t >= self.rel_mid + p.get("delay_mid", INF):
            current = self.mid
        if t >= self.rel_new + p.get("delay_new", INF) and chance(rng, p.get("new_share", 1.0)):
            current = self.new
        return current


@dataclass
class Campaign:
    """One distillation campaign: actor, tactics drawn for this seed, its accounts."""

    idx: int
    campaign_id: str
    actor: str
    style: str
    tactics: dict[str, Any]
    accounts: list[Account]
    volume: dict[str, int]
    wrappers: dict[str, list[str]]
    system: list[str]
    pool: list[Addr]
    release_delay: float


@dataclass
class World:
    """Everything one seed fixes, independent of the period rendered."""

    seed: int
    scale: float
    days: int
    periods: dict[str, tuple[float, float]]
    models: Models
    accounts: list[Account]
    campaigns: list[Campaign]
    ips: IpSpace
    shared: dict[str, Any]


# ------------------------------------------------------------------ time grids


HOURS: dict[str, list[float]] = {
    "consumer": [2, 1, .6, .4, .3, .4, .8, 1.5, 2.5, 3, 3.2, 3.4, 3.5, 3.4, 3.3, 3.3, 3.5, 3.8, 4.2, 4.6, 4.8, 4.4,
                 3.6, 2.6],
    "work": [.2, .1, .1, .1, .1, .2, .5, 1.5, 4, 6, 6.5, 6, 4.5, 5.5, 6.2, 6, 5.5, 4, 2.2, 1.5, 1.2, 1, .7, .4],
    "student": [1.5, 1, .6, .3, .2, .2, .3, .8, 1.5, 2.5, 3, 3, 2.8, 3, 3.2, 3.4, 3.5, 3, 3, 3.6, 4.2, 4.6, 4, 2.8],
    "saas": [.8, .6, .5, .4, .4, .5, .9, 1.6, 2.4, 2.9, 3, 3, 2.9, 2.9, 3, 3, 2.9, 2.7, 2.5, 2.4, 2.2, 1.9, 1.5, 1.1],
    "flat": [1.0] * 24,
}  # fmt: skip


def intensity(lo: float, hi: float, tz: float, hours: Sequence[float], weekend: float) -> np.ndarray:
    """Relative request intensity per BIN over [lo, hi) for a local-hour profile and weekend factor."""
    t = lo + BIN * np.arange(max(1, math.ceil((hi - lo) / BIN)))
    local = t + tz * HOUR
    hour = ((local // HOUR) % 24).astype(int)
    dow = ((local // DAY) + 3) % 7
    lam = np.asarray(hours, dtype=float)[hour]
    return np.asarray(lam * np.where(dow >= 5, weekend, 1.0), dtype=float)


def draw_times(rng: Rng, lam: np.ndarray, lo: float, n: int, regular: bool = False, jitter: float = 0.0) -> np.ndarray:
    """``n`` times with density ``lam`` per BIN from ``lo``: Poisson-like, or evenly spread (``regular``)."""
    if n <= 0 or lam.sum() <= 0:
        return np.empty(0)
    cum = np.cumsum(lam)
    u = (np.arange(n) + 0.5) / n if regular else np.sort(rng.random(n))
    if jitter:
        u = np.clip(u + rng.normal(0, jitter / n, n), 0, 1 - 1e-12)
    pos = np.searchsorted(cum, u * cum[-1], side="right")
    prev = np.where(pos > 0, cum[np.maximum(pos - 1, 0)], 0.0)
    frac = (u * cum[-1] - prev) / lam[pos]
    return np.sort(lo + (pos + np.clip(frac, 0, 1)) * BIN)


def sessions(
    rng: Rng, n_req: int, lo: float, hi: float, tz: float, profile: str, weekend: float, turns: float, gap: float
) -> list[list[float]]:
    """Group ``n_req`` requests into sessions placed by a local-hour profile; each a list of times."""
    if n_req <= 0 or hi - lo < 60:
        return []
    n_sess = max(1, round(n_req / turns))
    starts = draw_times(rng, intensity(lo, hi, tz, HOURS[profile], weekend), lo, n_sess)
    out = []
    for s in starts:
        k = int(rng.geometric(1.0 / turns))
        times = s + np.concatenate([[0.0], np.cumsum(rng.exponential(gap, k - 1) + 5)])
        out.append([float(x) for x in times if x < hi])
    return [s for s in out if s]


def poisson(rng: Rng, rate_per_day: float, lo: float, hi: float) -> int:
    """Number of events over [lo, hi) at ``rate_per_day``."""
    return int(rng.poisson(max(0.0, rate_per_day) * max(0.0, hi - lo) / DAY))


# ------------------------------------------------------------------ task builders (shared)


def image_url(rng: Rng, public: bool) -> str:
    """An image reference: a public dataset URL or a small inline screenshot."""
    if public:
        host = pick(
            rng, ["images.cocodataset.org/train2017", "upload.wikimedia.org/charts", "cdn.figures-dataset.net/v2"]
        )
        return f"https://{host}/{int(rng.integers(10**11)):012d}.jpg"
    return "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + hexid(rng, 12) + hexid(rng, 12)


def task_phrase(text: str) -> str:
    """'Write a function to sort a list.' -> 'sort a list'."""
    body = re.sub(
        r"^(write|create|develop) an? (python )?(function|program|script) (to|that) ", "", text.strip(), flags=re.I
    )
    return body.rstrip(". ")


def perturb_numbers(rng: Rng, text: str) -> str:
    """Change the numbers of a word problem (data augmentation)."""
    return re.sub(r"\d+", lambda m: str(max(1, int(int(m.group()) * rng.uniform(0.5, 2.0)) + 1)), text)


def chat_task(c: Corpus, rng: Rng) -> Task:
    """What an ordinary person asks first in a chat."""
    r = rng.random()
    if r < 0.45:
        return Task(fill(rng, pick(rng, CHAT_TEMPLATES), SLOTS))
    if r < 0.62:
        ins, inp, _ = pick(rng, c.instructions)
        return Task(f"{ins}\n\n{inp}".strip())
    if r < 0.74:
        return Task(pick(rng, c.vicuna))
    if r < 0.82:
        cat, turns = pick(rng, c.mtbench)
        return Task(turns[0], "math" if cat in ("math", "reasoning") else "general")
    if r < 0.88:
        q, a = pick(rng, c.gsm8k)
        return Task(fill(rng, pick(rng, STUDENT_MATH), {"q": [q], "x": [str(int(rng.integers(3, 90)))]}), "math", a)
    if r < 0.95:
        text, code, _ = pick(rng, c.mbpp)
        return Task(f"How do I {task_phrase(text)} in Python?", "code", code)
    if r < 0.98:
        return Task(
            pick(
                rng,
                ["What's in this picture?", "Can you read the text in this screenshot?", "what kind of plant is this"],
            ),
            images=(image_url(rng, False),),
        )
    return Task(pick(rng, c.forbidden)[1], "refuse")


def dev_task(c: Corpus, rng: Rng) -> Task:
    """A developer's question about code."""
    text, code, _ = pick(rng, c.mbpp)
    ask = pick(rng, DEV_ASKS)
    return Task(ask.format(err=pick(rng, CODE_ERRORS), code=code, text=text), "code", code)


def conversation(
    rng: Rng, first: Task, n: int, system: str | None, followups: Sequence[str], **kw: Any
) -> list[tuple[Req, Resp]]:
    """A multi-turn chat: each request carries the history so far."""
    hist: list[Msg] = []
    out = []
    task = first
    effort = kw.pop("effort", None)
    cot = kw.pop("cot", False)
    for i in range(n):
        hist.append(Msg("user", task.text, images=task.images))
        resp = _answer(rng, task, cot, effort)
        out.append((Req(msgs=list(hist), system=system, effort=effort, **kw), resp))
        hist.append(Msg("assistant", resp.text))
        if i + 1 < n:
            pool = (
                {"code": CODE_FOLLOWUPS, "math": MATH_FOLLOWUPS}.get(task.kind, followups) if followups else followups
            )
            task = Task(fill(rng, pick(rng, pool), FOLLOW_SLOTS), task.kind if task.kind != "refuse" else "general")
    return out


CODING_TOOLS = {
    "read": ("Read the contents of a file in the workspace.", {"path": "string"}),
    "write": ("Create or overwrite a file with the given content.", {"path": "string", "content": "string"}),
    "edit": ("Replace an exact string in a file.", {"path": "string", "old_str": "string", "new_str": "string"}),
    "run": ("Run a shell command in the project root and return its output.", {"command": "string"}),
    "search": ("Search the codebase for a regular expression.", {"pattern": "string", "path": "string"}),
    "list": ("List the files in a directory.", {"path": "string"}),
}
TOOL_SCHEMES = [
    {"read": "read_file", "write": "write_to_file", "edit": "replace_in_file", "run": "execute_command",
     "search": "search_files", "list": "list_files"},
    {"read": "view", "write": "create", "edit": "str_replace", "run": "bash", "search": "grep", "list": "ls"},
    {"read": "read", "write": "write", "edit": "edit", "run": "run_terminal_cmd", "search": "grep_search",
     "list": "list_dir"},
    {"read": "open_file", "write": "save_file", "edit": "apply_edit", "run": "shell", "search": "find_in_files",
     "list": "list_directory"},
]  # fmt: skip


def coding_tools(scheme: dict[str, str]) -> list[dict[str, Any]]:
    """Tool definitions of a coding agent, named by ``scheme``."""
    out = []
    for kind, name in scheme.items():
        desc, props = CODING_TOOLS[kind]
        schema = {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}, "required": list(props)}
        out.append({"name": name, "description": desc, "parameters": schema})
    return out


def _tool_args(rng: Rng, kind: str, files: list[str], code: str) -> dict[str, Any]:
    f = pick(rng, files)
    return {
        "read": {"path": f},
        "write": {"path": f, "content": code},
        "list": {"path": pick(rng, [".", "src", "tests"])},
        "edit": {"path": f, "old_str": code.split("\n")[0], "new_str": code.split("\n")[0] + "  # fixed"},
        "run": {"command": pick(rng, ["pytest -q", f"pytest -q tests/test_{f.split('/')[-1]}", "npm test", "ruff ."])},
        "search": {"pattern": pick(rng, ["def ", "TODO", "import ", "class "]), "path": "src"},
    }[kind]


def _tool_output(rng: Rng, kind: str, files: list[str], code: str) -> str:
    if kind == "read":
        return code
    if kind == "run":
        if chance(rng, 0.5):
            return (
                f"FAILED tests/test_main.py::test_case_{int(rng.integers(1, 9))} - AssertionError\n1 failed, 7 passed"
            )
        return "8 passed in 0.41s"
    if kind == "list":
        return "\n".join(files)
    if kind == "search":
        return "\n".join(f"{f}:{int(rng.integers(1, 200))}: def helper()" for f in files[:3])
    return "OK"


def agent_run(
    rng: Rng, task: str, code: str, scheme: dict[str, str], system: str, steps: int, **kw: Any
) -> list[tuple[Req, Resp]]:
    """A coding-agent trajectory: one request per step, the history growing with tool calls and results."""
    pkg = pick(rng, WORDS)
    files = [f"src/{pkg}/{pick(rng, ['core', 'utils', 'api', 'models', 'cli'])}.py" for _ in range(3)] + [
        "tests/test_main.py"
    ]
    tools = coding_tools(scheme)
    hist = [Msg("user", task)]
    out = []
    for i in range(steps):
        if i == steps - 1:
            resp = Resp(text=f"Done. {_prose(rng, task, 2)}\n\n```python\n{code.strip()}\n```")
        else:
            kind = pick(rng, ["list", "read", "search"] if i < 2 else ["read", "edit", "run", "write", "run"])
            cid = f"call_{hexid(rng, 12)}"
            call = (cid, scheme[kind], json.dumps(_tool_args(rng, kind, files, code)))
            resp = Resp(
                text=pick(rng, [None, None, "Let me look at the code first.", "Now I'll run the tests."]), calls=(call,)
            )
        out.append((Req(msgs=list(hist), system=system, tools=tools, **kw), resp))
        if resp.calls:
            kind = next(k for k, v in scheme.items() if v == resp.calls[0][1])
            hist += [
                Msg("assistant", resp.text, calls=resp.calls),
                Msg("tool", _tool_output(rng, kind, files, code), call_id=resp.calls[0][0]),
            ]
    return out


def _fake_value(rng: Rng, spec: dict[str, Any], words: list[str]) -> Any:
    kind = spec.get("type", "string")
    if spec.get("enum"):
        return pick(rng, spec["enum"])
    if kind == "integer":
        return int(rng.integers(1, 100))
    if kind == "number":
        return round(float(rng.uniform(0, 100)), 2)
    if kind == "boolean":
        return bool(rng.integers(2))
    if kind == "array":
        return [pick(rng, words) for _ in range(int(rng.integers(1, 3)))]
    if kind == "object":
        return {}
    return pick(rng, words)


def tool_call_for(rng: Rng, question: str, func: dict[str, Any]) -> tuple[str, str, str]:
    """A plausible call of ``func`` answering ``question``."""
    words = [w.strip(".,?'\"") for w in question.split() if len(w) > 3] or ["value"]
    props = func.get("parameters", {}).get("properties", {}) or {}
    need = func.get("parameters", {}).get("required", list(props)) or []
    args = {k: _fake_value(rng, props.get(k, {}), words) for k in need if isinstance(props.get(k, {}), dict)}
    return f"call_{hexid(rng, 12)}", func["name"], json.dumps(args)


# ------------------------------------------------------------------ benign behaviours


@dataclass
class Ctx:
    """What behaviours need while rendering one period."""

    world: World
    corpus: Corpus
    period: str


def _span(a: Account, lo: float, hi: float) -> tuple[float, float]:
    return max(lo, a.start, a.created), min(hi, a.end, a.attack_from if a.attack_from > -INF else INF)


def _chat_like(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng, profile: str, turns: float) -> list[Ex]:
    """Sessions of conversations, for casual users and power users."""
    c, m = ctx.corpus, ctx.world.models
    out: list[Ex] = []
    p = a.params
    for times in sessions(rng, poisson(rng, a.rate, lo, hi), lo, hi, a.tz, profile, p.get("weekend", 1.1), turns, 80):
        r = rng.random()
        first = dev_task(c, rng) if r < p.get("code", 0.1) else chat_task(c, rng)
        if first.kind == "math" and chance(rng, p.get("cot", 0.2)):
            first.text += pick(rng, [" Think step by step.", " Show your work.", " Explain your reasoning."])
        effort = pick(rng, ["medium", "high"]) if chance(rng, p.get("effort", 0.0)) else None
        system = p.get("system") if chance(rng, 0.7) else None
        model = m.benign(rng, a, times[0])
        conv = f"conv-{hexid(rng, 10)}"
        kw = {"temperature": p.get("temp"), "max_tokens": p.get("max_tokens", 1024), "stream": p.get("stream", False)}
        turns_ = conversation(rng, first, len(times), system, FOLLOWUPS, effort=effort, cot=first.kind == "math", **kw)
        out += [Ex(t, rq, rs, model, conv) for t, (rq, rs) in zip(times, turns_, strict=True)]
    return out


def gen_chat(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Casual users: a few evening sessions a week, short conversations on anything."""
    return _chat_like(ctx, a, lo, hi, rng, "consumer", 2.2)


def gen_power(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Heavy individual users: long conversations at most hours, reasoning and code."""
    return _chat_like(ctx, a, lo, hi, rng, pick(rng, ["consumer", "work"]), 4.5)


def gen_developer(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Developers: coding-agent runs in an editor plus questions about code, in working hours."""
    c, m, p = ctx.corpus, ctx.world.models, a.params
    product = ctx.world.shared["dev_products"][p["product"]]
    out: list[Ex] = []
    n = poisson(rng, a.rate, lo, hi)
    for times in sessions(rng, n, lo, hi, a.tz, "work", 0.25, 6.0, 25):
        model = m.benign(rng, a, times[0])
        conv = f"conv-{hexid(rng, 10)}"
        kw = {"temperature": p.get("temp"), "max_tokens": 8192, "stream": True}
        if chance(rng, p["agent_share"]):
            text, code, _ = pick(rng, c.mbpp)
            task = pick(
                rng,
                [
                    f"{text} Put it in the right module and add tests.",
                    "Fix the failing test.",
                    f"Refactor the helper so that it can {task_phrase(text)}",
                    "Why is CI red? Fix it.",
                ],
            )
            effort = p.get("effort")
            steps = agent_run(rng, task, code, product["scheme"], product["system"], len(times), effort=effort, **kw)
        else:
            steps = conversation(rng, dev_task(c, rng), len(times), product["chat_system"], FOLLOWUPS, **kw)
        out += [Ex(t, rq, rs, model, conv) for t, (rq, rs) in zip(times, steps, strict=True)]
    return out


def _jobs(rng: Rng, lo: float, hi: float, tz: float, mode: str) -> list[float]:
    """Start times of scheduled batch jobs."""
    first_day = math.floor((lo + tz * HOUR) / DAY)
    if mode == "nightly":
        hour = float(rng.integers(0, 5))
        starts = [(d * DAY + hour * HOUR - tz * HOUR) for d in range(first_day, first_day + 20)]
    elif mode == "hourly":
        starts = list(np.arange(math.ceil(lo / HOUR) * HOUR, hi, HOUR))
    else:
        starts = list(draw_times(rng, intensity(lo, hi, tz, HOURS["work"], 0.2), lo, max(1, int((hi - lo) / DAY * 3))))
    return [float(s) + rng.uniform(0, 120) for s in starts if lo <= s < hi]


def gen_batch(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Enterprise batch jobs: one fixed template over many documents, steady high volume."""
    tpl = ctx.world.shared["enterprise_templates"][a.params["template"]]
    n = poisson(rng, a.rate, lo, hi)
    mode = a.params["jobs"]
    if mode == "continuous":
        times = list(draw_times(rng, intensity(lo, hi, a.tz, HOURS["saas"], 0.6), lo, n))
    else:
        starts = _jobs(rng, lo, hi, a.tz, mode)
        if not starts:
            return []
        per = np.bincount(rng.integers(len(starts), size=n), minlength=len(starts))
        times = [
            s + float(x)
            for s, k in zip(starts, per, strict=True)
            for x in np.cumsum(rng.exponential(a.params["gap"], k))
        ]
    model = ctx.world.models.pinned if a.params.get("pinned") else ctx.world.models.mini
    out = []
    for t in times:
        if lo <= t < hi:
            doc, answer = tpl["make"](rng, ctx.corpus)
            req = Req(
                msgs=[Msg("user", tpl["user"].format(doc=doc))],
                system=tpl["system"],
                temperature=0.0,
                max_tokens=tpl["max_tokens"],
                json_mode=tpl["json"],
            )
            out.append(Ex(t, req, Resp(text=answer), model))
    return out


def gen_saas(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """A SaaS backend: its end users' conversations behind one fixed product prompt."""
    p, c = a.params, ctx.corpus
    out: list[Ex] = []
    n = poisson(rng, a.rate, lo, hi)
    for times in sessions(rng, n, lo, hi, a.tz, "saas", 0.7, p["turns"], 40):
        if p["kind"] == "writing":
            ins, inp, _ = pick(rng, c.instructions)
            first = Task(f"{ins}\n\n{inp}".strip())
        else:
            first = Task(fill(rng, pick(rng, SUPPORT_ASKS), SUPPORT_SLOTS))
        kw = {"temperature": p["temp"], "max_tokens": 800, "stream": p["stream"]}
        steps = conversation(rng, first, len(times), p["system"], SUPPORT_FOLLOWUPS, **kw)
        if p.get("tools") and chance(rng, 0.4):
            rq, _ = steps[0]
            rq.tools = p["tools"]
            steps[0] = (rq, Resp(text=None, calls=(tool_call_for(rng, first.text, pick(rng, p["tools"])),)))
        model = ctx.world.models.benign(rng, a, times[0])
        conv = f"conv-{hexid(rng, 10)}"
        out += [Ex(t, rq, rs, model, conv) for t, (rq, rs) in zip(times, steps, strict=True)]
    return out


def gen_app(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """A user of a popular third-party app that calls the API with the user's own key."""
    app = ctx.world.shared["app"]
    c = ctx.corpus
    out: list[Ex] = []
    for times in sessions(rng, poisson(rng, a.rate, lo, hi), lo, hi, a.tz, "consumer", 1.2, 1.6, 60):
        if app["kind"] == "tutor":
            q, ans = pick(rng, c.gsm8k)
            first = Task(q, "math", ans)
        elif app["kind"] == "writing":
            ins, inp, _ = pick(rng, c.instructions)
            first = Task(inp or ins)
        else:
            first = dev_task(c, rng)
        steps = conversation(
            rng,
            first,
            len(times),
            app["system"],
            FOLLOWUPS,
            temperature=app["temp"],
            max_tokens=1500,
            cot=app["kind"] == "tutor",
        )
        model = app["model"]
        out += [Ex(t, rq, rs, model) for t, (rq, rs) in zip(times, steps, strict=True)]
    return out


def _eval_items(ctx: Ctx, rng: Rng, bench: str, size: int, style: str) -> list[tuple[Req, Resp, str]]:
    """Requests of one benchmark run, item by item in dataset order."""
    c = ctx.corpus
    shots = "".join(f"Question: {q}\nAnswer: {_math_solution(a, True)}\n\n" for q, a in c.gsm8k[:8])
    out: list[tuple[Req, Resp, str]] = []
    if bench == "gsm8k":
        start = int(rng.integers(0, len(c.gsm8k) - size))
        for q, a in c.gsm8k[start : start + size]:
            if style == "completions":
                req = Req(
                    msgs=[Msg("user", f"{shots}Question: {q}\nAnswer: Let's think step by step.")],
                    temperature=0.0,
                    max_tokens=512,
                    stop=["Question:", "\n\n\n"],
                )
            else:
                req = Req(
                    msgs=[
                        Msg(
                            "user",
                            f"Solve the following math problem step by step. The last line of your "
                            f'response should be of the form "ANSWER: $ANSWER".\n\n{q}',
                        )
                    ],
                    temperature=0.0,
                    max_tokens=2048,
                )
            out.append((req, Resp(text=_math_solution(a, True)), style))
    elif bench == "humaneval":
        for prompt, sol, _ in c.humaneval[:size]:
            if style == "completions":
                req = Req(
                    msgs=[Msg("user", prompt)],
                    temperature=0.2,
                    max_tokens=512,
                    n=5,
                    stop=["\ndef ", "\nclass ", "\nif __name__"],
                )
                out.append((req, Resp(text=sol), style))
            else:
                req = Req(
                    msgs=[Msg("user", f"Complete the following Python function.\n```python\n{prompt}```")],
                    temperature=0.0,
                    max_tokens=1024,
                )
                out.append((req, Resp(text=f"```python\n{prompt}{sol}```"), "chat"))
    elif bench == "mbpp":
        for text, code, tests in c.mbpp[:size]:
            user = (
                f"You are an expert Python programmer, and here is your task: {text} "
                "Your code should pass these tests:\n\n" + "\n".join(tests)
            )
            out.append(
                (
                    Req(msgs=[Msg("user", user)], temperature=0.0, max_tokens=512),
                    Resp(text=f"[BEGIN]\n{code}\n[DONE]"),
                    "chat",
                )
            )
    elif bench == "bfcl":
        start = int(rng.integers(0, max(1, len(c.bfcl) - size)))
        for q, funcs in c.bfcl[start : start + size]:
            req = Req(msgs=[Msg("user", q)], tools=funcs, temperature=0.0, max_tokens=512)
            out.append((req, Resp(text=None, calls=(tool_call_for(rng, q, funcs[0]),)), "chat"))
    else:  # mt-bench: two turns, then a judge call
        for cat, turns in c.mtbench[:size]:
            t1 = Task(turns[0], "math" if cat == "math" else "general")
            for rq, rs in conversation(rng, t1, 1, None, [], temperature=0.7, max_tokens=1024):
                out.append((rq, rs, "chat"))
            judge = (
                f"[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided "
                f"by an AI assistant to the user question displayed below. Rate it on a scale of 1 to 10 in the "
                f'format "[[rating]]".\n\n[Question]\n{turns[0]}\n\n[The Start of Assistant\'s Answer]\n'
                f"{_prose(rng, turns[0], 3)}\n[The End of Assistant's Answer]"
            )
            out.append(
                (
                    Req(msgs=[Msg("user", judge)], temperature=0.0, max_tokens=512),
                    Resp(text=f"The answer is helpful. Rating: [[{int(rng.integers(4, 10))}]]"),
                    "judge",
                )
            )
    return out


def gen_eval(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Evaluation harness: whole benchmark runs at high concurrency, including on release day."""
    m, p = ctx.world.models, a.params
    runs = [
        float(x)
        for x in draw_times(
            rng, intensity(lo, hi, a.tz, HOURS["work"], 0.3), lo, int(rng.poisson(p["runs"] * (hi - lo) / (7 * DAY)))
        )
    ]
    targets = [m.benign(rng, a, t) for t in runs]
    for rel, model in ((m.rel_mid, m.mid), (m.rel_new, m.new)):
        if lo <= rel < hi and chance(rng, p["on_release"]):
            runs.append(rel + rng.uniform(1, 30) * HOUR)
            targets.append(model)
    out: list[Ex] = []
    for start, model in zip(runs, targets, strict=True):
        bench = pick(rng, p["benches"])
        size = {
            "gsm8k": int(rng.integers(200, 1000)),
            "humaneval": 164,
            "mbpp": int(rng.integers(100, 500)),
            "bfcl": int(rng.integers(100, 400)),
            "mtbench": 80,
        }[bench]
        t = start
        for req, resp, shape in _eval_items(ctx, rng, bench, size, p["style"]):
            t += float(rng.exponential(p["gap"]))
            if t >= hi:
                break
            use = p["judge_model"] if shape == "judge" else model
            out.append(Ex(t, req, resp, use, shape="completions" if shape == "completions" else "chat"))
    return out


def gen_student(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """A student: homework at night, and lab sessions with the whole class at once."""
    c, klass = ctx.corpus, ctx.world.shared["classes"][a.params["class"]]
    times: list[float] = []
    for s in klass["labs"]:
        if lo <= s < hi and chance(rng, 0.85):
            times += [s + float(x) for x in np.sort(rng.uniform(0, klass["lab_len"], int(rng.poisson(4))))]
    for sess in sessions(rng, poisson(rng, a.rate, lo, hi), lo, hi, a.tz, "student", 1.3, 2.5, 120):
        times += sess
    out = []
    for t in sorted(times):
        if klass["subject"] == "math" or chance(rng, 0.2):
            q, ans = pick(rng, c.gsm8k)
            task = Task(
                fill(rng, pick(rng, STUDENT_MATH), {"q": [q], "x": [str(int(rng.integers(2, 99)))]}), "math", ans
            )
        else:
            text, code, _ = pick(rng, c.mbpp)
            task = Task(fill(rng, pick(rng, STUDENT_CODE), {"t": [task_phrase(text)], "code": [code]}), "code", code)
        if a.params["lower"]:
            task.text = task.text.lower()
        resp = _answer(rng, task, True, None)
        out.append(Ex(t, Req(msgs=[Msg("user", task.text)], max_tokens=1500), resp, ctx.world.models.benign(rng, a, t)))
    return out


def gen_research(ctx: Ctx, a: Account, lo: float, hi: float, rng: Rng) -> list[Ex]:
    """Academic researchers: interactive use plus scripted experiments (reasoning, red-teaming, judging)."""
    out = _chat_like(ctx, a, lo, hi, rng, "work", 3.0)
    c, p = ctx.corpus, a.params
    n_runs = int(rng.poisson(p["runs"] * (hi - lo) / (7 * DAY)))
    for start in draw_times(rng, intensity(lo, hi, a.tz, HOURS["work"], 0.5), lo, n_runs):
        t, model = float(start), ctx.world.models.benign(rng, a, float(start))
        for _ in range(int(rng.integers(50, p["run_size"]))):
            t += float(rng.exponential(2.0))
            if t >= hi:
                break
            if p["study"] == "redteam":
                _, q = pick(rng, c.forbidden)
                text = p["template"].format(q=q, jb=pick(rng, c.jailbreaks)[:800])
                task = Task(text, "refuse")
            elif p["study"] == "reasoning":
                q, ans = pick(rng, c.gsm8k)
                task = Task(p["template"].format(q=q, jb=""), "math", ans)
            else:
                ins, inp, _ = pick(rng, c.instructions)
                task = Task(
                    p["template"].format(q=f"{ins}\n{inp}", jb=""),
                    "json",
                    json.dumps({"score": int(rng.integers(1, 11)), "rationale": _prose(rng, ins, 1)}),
                )
            req = Req(msgs=[Msg("user", task.text)], temperature=p["temp"], max_tokens=2048)
            out.append(Ex(t, req, _answer(rng, task, task.kind == "math", None), model))
    return out


BEHAVIOURS: dict[str, Callable[[Ctx, Account, float, float, Rng], list[Ex]]] = {
    "chat": gen_chat, "power": gen_power, "developer": gen_developer, "batch": gen_batch, "saas": gen_saas,
    "app": gen_app, "eval": gen_eval, "student": gen_student, "research": gen_research,
}  # fmt: skip

FOLLOW_SLOTS: dict[str, Sequence[str]] = {**SLOTS, "err": CODE_ERRORS}
SUPPORT_ASKS = [
    "I can't log in to my {product} account", "How do I cancel my {product} subscription?",
    "I was charged twice this month", "Where is my order #{num}?", "How do I export my data from {product}?",
    "The {product} app keeps crashing on my phone", "Can I change the email on my account?",
    "Do you offer a student discount?", "my invoice shows the wrong company name", "How do I add a team member?",
]  # fmt: skip
SUPPORT_SLOTS: dict[str, Sequence[str]] = {
    "product": ["Planly", "ShopNest", "Fitloop", "Docspring", "CloudCart", "Teamboard"],
    "num": [str(x) for x in range(10432, 10532)],
}
SUPPORT_FOLLOWUPS = [
    "that didn't work",
    "ok thanks",
    "can I talk to a human?",
    "I did that already",
    "what about my {n} other orders?",
    "great, thank you!",
]

# ------------------------------------------------------------------ enterprise templates


def _invoice(rng: Rng, c: Corpus) -> tuple[str, str]:
    vendor = f"{pick(rng, WORDS).title()} {pick(rng, ['Supplies', 'Logistics', 'GmbH', 'Ltd', 'Inc'])}"
    total = round(float(rng.uniform(40, 9000)), 2)
    num = f"INV-{int(rng.integers(10000, 99999))}"
    doc = (
        f"{vendor}\nInvoice {num}\nDate: 2026-0{int(rng.integers(1, 3))}-{int(rng.integers(10, 28))}\n"
        f"Items: {int(rng.integers(1, 9))} x {pick(rng, WORDS)} units\nTotal due: {total} EUR"
    )
    return doc, json.dumps({"vendor": vendor, "invoice_number": num, "total": total, "currency": "EUR"})


def _ticket(rng: Rng, c: Corpus) -> tuple[str, str]:
    doc = fill(rng, pick(rng, SUPPORT_ASKS), SUPPORT_SLOTS) + ". " + _prose(rng, "the issue", 1)
    return doc, json.dumps(
        {
            "category": pick(rng, ["billing", "login", "shipping", "bug", "account"]),
            "priority": pick(rng, ["low", "medium", "high"]),
        }
    )


def _review(rng: Rng, c: Corpus) -> tuple[str, str]:
    doc = f"{pick(rng, ['Loved it', 'Terrible', 'Okay', 'Great value', 'Broke after a week'])}. " + _prose(
        rng, "the product", 2
    )
    return doc, json.dumps(
        {"sentiment": pick(rng, ["positive", "negative", "neutral"]), "aspects": ["price", "quality"]}
    )


def _summarize(rng: Rng, c: Corpus) -> tuple[str, str]:
    ins, inp, _ = pick(rng, c.instructions)
    doc = f"{ins} {inp} " + _prose(rng, ins, 6)
    return doc, _prose(rng, ins, 2)


def _paraphrase(rng: Rng, c: Corpus) -> tuple[str, str]:
    utter = fill(rng, pick(rng, SUPPORT_ASKS), SUPPORT_SLOTS)
    return utter, json.dumps([f"{utter} ({i})" for i in range(5)])


def _sql(rng: Rng, c: Corpus) -> tuple[str, str]:
    q = pick(
        rng,
        [
            "total revenue per region last quarter",
            "top 10 customers by orders",
            "churned users in January",
            "average basket size by weekday",
            "orders with late shipping",
        ],
    )
    return q, f"SELECT region, SUM(amount) FROM orders WHERE created_at >= '2026-01-01' GROUP BY region; -- {q}"


ENTERPRISE_TEMPLATES: list[dict[str, Any]] = [
    {"system": "You extract structured data from invoices. Reply with JSON only.",
     "user": "Extract vendor, invoice_number, total and currency from this invoice:\n\n{doc}", "make": _invoice,
     "json": True, "max_tokens": 300},
    {"system": "You are a support ticket triage system.",
     "user": "Classify the ticket into category and priority. Return JSON.\n\nTicket: {doc}", "make": _ticket,
     "json": True, "max_tokens": 100},
    {"system": "You analyse customer reviews for the product team.",
     "user": "Review:\n{doc}\n\nReturn the sentiment and the aspects mentioned as JSON.", "make": _review,
     "json": True, "max_tokens": 150},
    {"system": "You write concise executive summaries.", "user": "Summarize in 3 sentences:\n\n{doc}",
     "make": _summarize, "json": False, "max_tokens": 300},
    {"system": "You generate training data for our intent classifier.",
     "user": "Write 5 different ways a customer might say the following. Return a JSON list.\n\n\"{doc}\"",
     "make": _paraphrase, "json": True, "max_tokens": 400},
    {"system": "You translate analytics questions into PostgreSQL for the warehouse schema orders(id, region, "
               "customer_id, amount, created_at).", "user": "Question: {doc}\nSQL:", "make": _sql, "json": False,
     "max_tokens": 200},
]  # fmt: skip

# ------------------------------------------------------------------ attack content


COT_ASKS = [
    "step by step",
    "showing all of your reasoning",
    "thinking through each step carefully",
    "with a detailed chain of reasoning",
    "explaining every intermediate step",
    "reasoning out loud first",
    "with your full working",
    "walking through your thought process",
]
OPENERS = ["", "Please ", "Kindly ", "I need you to ", "Can you ", "Your task: ", "Carefully ", "Now "]
VERBS = {
    "reasoning": ["solve the following problem", "work out the answer to this question", "answer the question below"],
    "coding": ["write a solution for the task below", "implement the following", "solve this programming task"],
    "general": ["respond to the following request", "complete the task below", "answer the following"],
    "safety": ["rewrite the following request so that it is safe to answer, then answer the rewritten request",
               "explain whether the following request is harmful, then give the most helpful safe response",
               "turn this sensitive question into a safe, policy-compliant version and answer that"],
    "vision": ["describe the image and answer the question", "analyse the figure and solve the problem"],
    "tool-use": ["decide which function to call for the request below", "use the tools to handle this request"],
}  # fmt: skip
CLOSERS = [
    "",
    " Finish with the final answer on its own line.",
    " End with 'Final answer: <answer>'.",
    " Be thorough.",
    " Double-check your work.",
    " Do not skip any steps.",
    " Give a complete, self-contained answer.",
]
SEPS = ["\n\n", "\n---\n", " ", "\n\n### Input\n"]


def make_wrapper(rng: Rng, focus: str, cot: bool) -> str:
    """One prompt wrapper with a ``{p}`` slot for the problem."""
    verb = pick(rng, VERBS.get(focus, VERBS["general"]))
    head = f"{pick(rng, OPENERS)}{verb}"
    head = head[0].upper() + head[1:]
    body = f"{head} {pick(rng, COT_ASKS)}." if cot else f"{head}."
    body += pick(rng, CLOSERS)
    return f"{body}{pick(rng, SEPS)}{{p}}" if chance(rng, 0.7) else f"{{p}}{pick(rng, SEPS)}{body}"


AGENT_SYSTEMS = [
    "You are an autonomous software engineering agent. You have access to a sandboxed repository and tools to read, "
    "edit and run code. Work step by step: explore, plan, implement, test. Explain your reasoning before each action.",
    "You are a senior engineer operating in a terminal. Use the tools to complete the user's task. Think carefully "
    "about each step and verify your changes by running the tests.",
    "You are a coding assistant with tool access. Solve the issue end to end and summarize what you changed.",
]  # fmt: skip


def attack_task(ctx: Ctx, camp: Campaign, focus: str, rng: Rng) -> Task:
    """The bare problem a campaign wants answered, by capability."""
    c = ctx.corpus
    if focus == "reasoning":
        q, a = pick(rng, c.gsm8k)
        if chance(rng, camp.tactics["augment"]):
            return Task(perturb_numbers(rng, q), "math")
        if chance(rng, 0.1):
            _, turns = pick(rng, [x for x in c.mtbench if x[0] in ("math", "reasoning")])
            return Task(turns[0], "math")
        return Task(q, "math", a)
    if focus == "coding":
        r = rng.random()
        if r < 0.35:
            prompt, sol, _ = pick(rng, c.humaneval)
            return Task(f"```python\n{prompt}```", "code", prompt + sol)
        text, code, tests = pick(rng, c.mbpp)
        if r < 0.75:
            return Task(f"{text}\nYour code should pass:\n" + "\n".join(tests), "code", code)
        lang = pick(rng, ["Rust", "Go", "TypeScript", "Java", "C++", "Kotlin"])
        return Task(f"Write a {lang} function to {task_phrase(text)}.", "code", code)
    if focus == "vision":
        q = pick(
            rng,
            [
                "What is happening in this image? Describe every detail.",
                "Transcribe all text in the image.",
                "Solve the problem shown in the figure.",
                "What trend does this chart show and why?",
                "Count the objects in the image and explain how you counted.",
            ],
        )
        return Task(q, "general", images=(image_url(rng, True),))
    if focus == "safety":
        _, q = pick(rng, c.forbidden)
        if chance(rng, camp.tactics["jailbreak"]):
            q = pick(rng, c.jailbreaks)[:1500].replace("[INSERT PROMPT HERE]", q) + f"\n\n{q}"
        return Task(q, "general")
    ins, inp, _ = pick(rng, c.instructions) if chance(rng, 0.6) else (pick(rng, c.vicuna), "", None)
    return Task(f"{ins}\n\n{inp}".strip(), "general")


def elicit(camp: Campaign, rng: Rng, focus: str, task: Task) -> tuple[Req, bool]:
    """Wrap a problem with the campaign's elicitation tactic; returns the request and whether CoT is asked."""
    tac = camp.tactics
    mode = tac["elicitation"] if focus in tac["elicit_focus"] else "none"
    pool = camp.wrappers.get(focus) or camp.wrappers["general"]
    wrapper = make_wrapper(rng, focus, mode == "explicit") if tac["templates"] == "diverse" else pick(rng, pool)
    if mode != "explicit" and tac["templates"] == "diverse" and chance(rng, 0.5):
        wrapper = "{p}"
    text = wrapper.replace("{p}", task.text)
    msgs = [Msg("user", text, images=task.images)]
    if mode == "prior-turn":
        msgs = [
            Msg("user", "For every question I send, reason step by step and show all your work."),
            Msg("assistant", "Understood. I will show my full reasoning for each question."),
            *msgs,
        ]
    system = pick(rng, camp.system) if mode == "system" or (camp.system and chance(rng, 0.3)) else None
    temp = float(round(rng.uniform(0.2, 1.2), 2)) if tac["temperature"] == "sweep" else tac["temperature"]
    req = Req(
        msgs=msgs,
        system=system,
        temperature=temp,
        max_tokens=tac["max_tokens"],
        n=tac["n_samples"],
        effort="high" if mode == "api-param" else None,
        json_mode=tac["json"],
    )
    return req, mode != "none"


def attack_items(ctx: Ctx, camp: Campaign, focus: str, rng: Rng) -> list[tuple[Req, Resp]]:
    """The request(s) of one attack work item: one exchange, or an agent trajectory."""
    c, tac = ctx.corpus, camp.tactics
    if focus == "agentic":
        text, code, tests = pick(rng, c.mbpp)
        goal = pick(
            rng,
            [
                f"{text} Add tests.",
                f"The test suite fails: {tests[0]}. Fix the implementation.",
                " ".join(pick(rng, c.fs_tasks))[:600],
            ],
        )
        steps = int(rng.integers(3, 12))
        system = pick(rng, camp.system) if camp.system else pick(rng, AGENT_SYSTEMS)
        scheme = ctx.world.shared["dev_products"][tac["agent_scheme"]]["scheme"]
        kw = {
            "temperature": tac["temperature"] if tac["temperature"] != "sweep" else 0.7,
            "max_tokens": tac["max_tokens"],
            "effort": "high" if tac["elicitation"] == "api-param" else None,
        }
        run = agent_run(rng, goal, code, scheme, system, steps, **kw)
        return run if tac["agent_mode"] == "loop" else [run[-1]]
    if focus == "tool-use":
        q, funcs = pick(rng, c.bfcl)
        req, cot = elicit(camp, rng, focus, Task(q))
        req.tools = funcs
        thought = _reasoning(rng, 3) if cot else None
        return [(req, Resp(text=thought, calls=(tool_call_for(rng, q, funcs[0]),)))]
    task = attack_task(ctx, camp, focus, rng)
    req, cot = elicit(camp, rng, focus, task)
    return [(req, _answer(rng, task, cot, req.effort, req.json_mode))]


# ------------------------------------------------------------------ campaign traffic


def _campaign_times(rng: Rng, camp: Campaign, lo: float, hi: float, n: int, rel: float | None) -> np.ndarray:
    """When the campaign's requests go out (before they are spread over accounts)."""
    tac = camp.tactics
    tz = tac["operator_tz"]
    timing = tac["timing"]
    if timing == "human-like":
        lam = intensity(lo, hi, tz, HOURS["work"], 0.4)
    elif tac["hours"] == "24/7":
        lam = intensity(lo, hi, tz, HOURS["flat"], 1.0)
    else:
        shift = [1.0 if (h - tac["shift_start"]) % 24 < tac["shift_len"] else 0.0 for h in range(24)]
        lam = intensity(lo, hi, tz, shift, 1.0)
    if rel is not None and lo <= rel < hi:
        k = int((rel - lo) // BIN)
        lam[k:] *= tac["release_ramp"]
    if timing in ("synchronized", "jittered-sync"):
        return draw_times(rng, lam, lo, n, regular=True, jitter=0.3 if timing == "synchronized" else 3.0)
    if timing == "bursty":
        n_jobs = max(1, int((hi - lo) / (tac["job_every"] * HOUR)))
        starts = draw_times(rng, lam, lo, n_jobs, regular=True, jitter=0.5)
        per = np.bincount(rng.integers(n_jobs, size=n), minlength=n_jobs)
        parts = [s + rng.uniform(0, tac["job_len"] * HOUR, k) for s, k in zip(starts, per, strict=True)]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0)
    return draw_times(rng, lam, lo, n)


def _assign(rng: Rng, camp: Campaign, times: np.ndarray, lo: float, hi: float) -> list[tuple[float, Account]]:
    """Spread request times over the accounts active at each time (load balancer or per-operator)."""
    accts = [a for a in camp.accounts if a.start < hi and a.end > lo]
    if not accts:
        return []
    starts = np.array([max(a.start, a.attack_from) for a in accts])
    ends = np.array([a.end for a in accts])
    weights = np.array([a.rate for a in accts])
    out: list[tuple[float, Account]] = []
    rr = 0
    balanced = camp.tactics["timing"] in ("synchronized", "jittered-sync", "bursty")
    for t in times:
        live = np.flatnonzero((starts <= t) & (ends > t))
        if live.size == 0:
            continue
        if balanced:
            i = int(live[rr % live.size])
            rr += 1
        else:
            w = weights[live]
            i = int(live[int(rng.choice(live.size, p=w / w.sum()))])
        out.append((float(t), accts[i]))
    return out


def _adoption(camp: Campaign, since: float) -> float:
    """Share of a campaign's traffic on a model released ``since`` seconds ago."""
    tac = camp.tactics
    if tac["pivot"]:
        if since < camp.release_delay:
            return 0.0
        return tac["pivot_share"] if since < 5 * DAY else 0.9
    return 0.0 if since < tac["late_adopt_days"] * DAY else 0.6


def _attack_model(camp: Campaign, m: Models, rng: Rng, t: float) -> str:
    """Flagship of the moment; a pivoting campaign moves a share of its traffic to a new release at once."""
    model = m.old
    for rel, name in ((m.rel_mid, m.mid), (m.rel_new, m.new)):
        if t >= rel and chance(rng, _adoption(camp, t - rel)):
            model = name
    return model


def gen_campaign(ctx: Ctx, camp: Campaign, lo: float, hi: float, rng: Rng) -> list[tuple[Account, Ex]]:
    """All of a campaign's exchanges in [lo, hi)."""
    tac = camp.tactics
    rel = ctx.world.models.rel_new if ctx.period == "current" else ctx.world.models.rel_mid
    times = _campaign_times(rng, camp, lo, hi, camp.volume[ctx.period], rel)
    pending: dict[int, list[tuple[Req, Resp]]] = {}
    convs: dict[int, str | None] = {}
    out: list[tuple[Account, Ex]] = []
    for t, a in _assign(rng, camp, times, lo, hi):
        queue = pending.get(a.idx) or []
        if not queue:
            if chance(rng, tac["filler"]):
                first = chat_task(ctx.corpus, rng)
                queue = conversation(rng, first, 1, None, FOLLOWUPS, temperature=0.7, max_tokens=1024)
            else:
                queue = attack_items(ctx, camp, wpick(rng, tac["focus"]), rng)
            convs[a.idx] = f"conv-{hexid(rng, 10)}" if len(queue) > 1 or tac["conv_ids"] else None
        req, resp = queue.pop(0)
        pending[a.idx] = queue
        model = _attack_model(camp, ctx.world.models, rng, t)
        shape = a.params.get("shape") or wpick(rng, tac["shapes"])
        out.append((a, Ex(t, req, resp, model, convs.get(a.idx), shape=shape)))
    return out


# ------------------------------------------------------------------ world: infrastructure helpers


def new_id(rng: Rng, used: set[str], prefix: str, n: int = 10) -> str:
    """A fresh random identifier."""
    while True:
        s = f"{prefix}-{hexid(rng, n)}"
        if s not in used:
            used.add(s)
            return s


def client_for(rng: Rng, shared: dict[str, Any], sdk: str | None = None, ua: str | None = None) -> Client:
    """A client profile: a known SDK (random version) or a fixed user agent."""
    sdk = sdk or wpick(
        rng,
        {
            "openai-python": 5,
            "openai-node": 2,
            "anthropic-python": 1.5,
            "anthropic-ts": 0.5,
            "requests": 1,
            "httpx": 0.5,
            "curl": 0.4,
            "go": 0.4,
            "java": 0.2,
            "litellm": 0.5,
        },
    )
    fmt, versions = SDKS[sdk]
    shapes = dict(SDK_SHAPES[sdk])
    if sdk.startswith("openai") and chance(rng, 0.5):
        shapes = {"chat": 1.0}
    return Client(ua=ua or fmt.format(v=pick(rng, versions)), tls=pick(rng, shared["tls"][sdk]), shapes=shapes)


def home_net(rng: Rng, ips: IpSpace, country: str | None = None) -> tuple[Net, str]:
    """A residential customer: one home address (changing now and then) and a phone."""
    options = [x for x in RESIDENTIAL if country is None or x[1] == country] or RESIDENTIAL
    asn, cc = pick(rng, options)
    main = [ips.addr6(rng, asn) if chance(rng, 0.12) else ips.addr(rng, asn) for _ in range(int(rng.integers(1, 3)))]
    mob = [x for x in MOBILE if x[1] == cc] or MOBILE
    alt = [ips.addr(rng, pick(rng, mob)[0])]
    return Net("home", main, alt), cc


def _tz_for(rng: Rng, cc: str) -> float:
    base = TZ.get(cc, 0.0)
    return base + (pick(rng, [-2.0, -1.0, 0.0, 1.0]) if cc == "US" else 0.0)


@dataclass
class Builder:
    """Accumulates accounts while the world is built."""

    rng: Rng
    ips: IpSpace
    shared: dict[str, Any]
    born: float
    prev_start: float
    cur_start: float
    cur_end: float
    used: set[str] = field(default_factory=set)
    accounts: list[Account] = field(default_factory=list)

    def lifecycle(self, p_new: float = 0.08, p_churn: float = 0.08) -> tuple[float, float, float]:
        """(created, start, end) of a benign account: most span both periods, some join or leave."""
        r = self.rng.random()
        if r < p_new:
            created = self.rng.uniform(self.cur_start - 2 * DAY, self.cur_start + 0.7 * (self.cur_end - self.cur_start))
            return created, created + self.rng.uniform(60, 2 * DAY), INF
        created = self.prev_start - logu(self.rng, 3, 900) * DAY
        end = self.rng.uniform(self.prev_start + DAY, self.cur_start) if r < p_new + p_churn else INF
        return created, created, end

    def add(
        self, population: str, behaviour: str, rate: float, net: Net, client: Client, tz: float, **kw: Any
    ) -> Account:
        """Create and register one account."""
        rng = self.rng
        created, start, end = kw.pop("life", None) or self.lifecycle()
        params = kw.pop("params", {})
        params.setdefault("delay_mid", logu(rng, 0.5, 20) * DAY if chance(rng, 0.8) else INF)
        params.setdefault("delay_new", logu(rng, 0.2, 20) * DAY if chance(rng, 0.45) else INF)
        params.setdefault("new_share", float(rng.uniform(0.3, 1.0)))
        keys = [new_id(rng, self.used, "key", 12) for _ in range(kw.pop("n_keys", 1))]
        a = Account(
            idx=len(self.accounts),
            account_id=new_id(rng, self.used, "acct", 10),
            created=created,
            signup=kw.pop("signup", "standard"),
            tier=kw.pop("tier", "paid"),
            payment=kw.pop("payment", "new"),
            email_domain=kw.pop("email", pick(rng, WEBMAIL)),
            country=kw.pop("country", net.main[0][2]),
            org=kw.pop("org", None),
            population=population,
            behaviour=behaviour,
            start=start,
            end=end,
            rate=rate,
            net=net,
            client=client,
            keys=keys,
            tz=tz,
            params=params,
            **kw,
        )
        if a.payment == "new":
            a.payment = None if a.tier == "free" else new_id(rng, self.used, "pm", 8)
        self.accounts.append(a)
        return a


# ------------------------------------------------------------------ world: benign populations


def build_chat(b: Builder, n: int, vpn: bool) -> None:
    """Casual users (some on mobile CGNAT, some behind a commercial VPN); a few share a family card."""
    rng = b.rng
    for _ in range(n):
        net, cc = home_net(rng, b.ips)
        if vpn:
            net = Net("pool", [b.shared["vpn_pool"][0]], pool=list(b.shared["vpn_pool"]))
        elif chance(rng, 0.15):
            net = Net(
                "pool",
                net.alt,
                pool=b.shared["cgnat"].get(net.alt[0][1], net.alt),
            )
        tier = "free" if chance(rng, 0.45) else "paid"
        params = {
            "system": pick(rng, [None, "You are a helpful assistant.", "Answer briefly."]),
            "code": 0.08,
            "cot": 0.15,
            "temp": pick(rng, [None, None, 0.7, 1.0]),
            "mini": float(rng.uniform(0, 0.5)),
        }
        a = b.add(
            "chat-vpn" if vpn else "chat",
            "chat",
            logu(rng, 0.1, 4),
            net,
            client_for(rng, b.shared),
            _tz_for(rng, cc),
            tier=tier,
            params=params,
            country=cc,
        )
        if tier == "paid" and chance(rng, 0.06) and len(b.accounts) > 1:
            other = b.accounts[-2]
            if other.payment and other.population.startswith("chat"):
                a.payment = other.payment  # family card


def build_developers(b: Builder, n: int, office: dict[str, Any] | None = None) -> None:
    """Developers using coding agents in their editor (each with the SDK of their tool)."""
    rng = b.rng
    for _ in range(n):
        net, cc = home_net(rng, b.ips)
        product = int(rng.integers(len(b.shared["dev_products"])))
        sdk = b.shared["dev_products"][product]["sdk"]
        params = {
            "product": product,
            "agent_share": float(rng.uniform(0.3, 0.95)),
            "mini": 0.05,
            "effort": pick(rng, [None, None, "medium", "high"]),
            "temp": pick(rng, [None, 0.0, 0.2]),
            "delay_new": logu(rng, 0.1, 3) * DAY if chance(rng, 0.6) else INF,
            "new_share": 0.9,
        }
        kw: dict[str, Any] = {}
        if office:
            net = Net("office", office["ips"], net.main)
            kw = {"payment": office["card"], "org": office["org"], "email": office["domain"]}
        pop = office["population"] if office else "developer"
        b.add(
            pop,
            "developer",
            logu(rng, 2, 40),
            net,
            client_for(rng, b.shared, sdk),
            _tz_for(rng, cc),
            params=params,
            country=cc,
            **kw,
        )


def build_power(b: Builder, n: int) -> None:
    """Heavy individual users."""
    rng = b.rng
    for _ in range(n):
        net, cc = home_net(rng, b.ips)
        params = {
            "code": 0.3,
            "cot": 0.5,
            "effort": float(rng.uniform(0, 0.4)),
            "mini": 0.05,
            "system": pick(rng, [None, "You are a concise expert. Skip pleasantries."]),
            "stream": True,
            "delay_new": logu(rng, 0.05, 2) * DAY if chance(rng, 0.7) else INF,
            "max_tokens": 4096,
        }
        b.add(
            "power-user",
            "power",
            logu(rng, 10, 80),
            net,
            client_for(rng, b.shared),
            _tz_for(rng, cc),
            params=params,
            country=cc,
            tier=pick(rng, ["paid", "scale"]),
        )


def build_enterprise(b: Builder, n_orgs: int) -> None:
    """Enterprise orgs with batch jobs: department accounts share the company card and the VPC egress."""
    rng = b.rng
    for _ in range(n_orgs):
        org, card = new_id(rng, b.used, "org", 6), new_id(rng, b.used, "pm", 8)
        asn = pick(rng, DATACENTER)[0]
        egress = [b.ips.addr(rng, asn) for _ in range(int(rng.integers(1, 5)))]
        domain = f"{pick(rng, WORDS)}{pick(rng, ['corp', 'group', 'tech', 'bank', 'health'])}.com"
        redact = chance(rng, 0.25)
        cc = egress[0][2]
        for _dept in range(int(rng.integers(1, 4))):
            params = {
                "template": int(rng.integers(len(ENTERPRISE_TEMPLATES))),
                "gap": logu(rng, 0.2, 3.0),
                "jobs": pick(rng, ["nightly", "hourly", "continuous"]),
                "pinned": chance(rng, 0.5),
                "redact": redact,
            }
            b.add(
                "enterprise-batch",
                "batch",
                logu(rng, 40, 450),
                Net("dc", egress),
                client_for(rng, b.shared, pick(rng, ["openai-python", "java", "go", "httpx"])),
                TZ.get(cc, 0.0),
                tier="enterprise",
                signup="enterprise",
                payment=card,
                org=org,
                email=domain,
                params=params,
                n_keys=int(rng.integers(1, 4)),
                life=(b.prev_start - logu(rng, 60, 900) * DAY, b.prev_start - 30 * DAY, INF),
            )


def build_saas(b: Builder, n: int) -> None:
    """SaaS backends: a product's fixed prompt in front of its end users, from cloud servers."""
    rng = b.rng
    for _ in range(n):
        company = f"{pick(rng, WORDS).title()}{pick(rng, ['ly', 'io', 'Hub', 'Desk', 'Flow'])}"
        kind = pick(rng, ["support", "support", "writing"])
        system = (
            f"You are the assistant inside {company}. "
            + (
                "Help customers with account, billing and order "
                "questions. Be friendly, never promise refunds, escalate legal issues. "
                if kind == "support"
                else "Help users improve their writing. Keep their voice. "
            )
            + _prose(rng, company, 4)
        )
        tools: list[dict[str, Any]] = []
        if kind == "support" and chance(rng, 0.6):
            tools = [
                {
                    "name": "lookup_order",
                    "description": "Find an order by number.",
                    "parameters": {
                        "type": "object",
                        "properties": {"order_id": {"type": "string"}},
                        "required": ["order_id"],
                    },
                },
                {
                    "name": "get_account",
                    "description": "Fetch the customer's account status.",
                    "parameters": {
                        "type": "object",
                        "properties": {"email": {"type": "string"}},
                        "required": ["email"],
                    },
                },
            ]
        asn = pick(rng, DATACENTER)[0]
        net = Net("dc", [b.ips.addr(rng, asn) for _ in range(int(rng.integers(2, 7)))])
        params = {
            "kind": kind,
            "system": system,
            "tools": tools,
            "turns": float(rng.uniform(1.2, 3.5)),
            "temp": pick(rng, [0.3, 0.5, 0.7]),
            "stream": chance(rng, 0.6),
            "mini": float(rng.uniform(0.2, 0.9)),
        }
        b.add(
            "saas-backend",
            "saas",
            logu(rng, 60, 600),
            net,
            client_for(rng, b.shared, pick(rng, ["openai-python", "openai-node", "anthropic-python"])),
            TZ.get(net.main[0][2], 0.0),
            tier="scale",
            org=new_id(rng, b.used, "org", 6),
            email=f"{company.lower()}.com",
            signup=pick(rng, ["standard", "startup"]),
            params=params,
            n_keys=int(rng.integers(1, 4)),
        )


def build_app_users(b: Builder, n: int) -> None:
    """Users of one popular bring-your-own-key app: same system prompt and user agent, unrelated people."""
    rng = b.rng
    app = b.shared["app"]
    for _ in range(n):
        net, cc = home_net(rng, b.ips)
        client = Client(ua=app["ua"], tls=app["tls"], shapes={app["shape"]: 1.0})
        b.add(
            "app-users",
            "app",
            logu(rng, 0.3, 6),
            net,
            client,
            _tz_for(rng, cc),
            country=cc,
            tier=pick(rng, ["free", "paid", "paid"]),
        )


def build_eval(b: Builder, n_teams: int) -> None:
    """Eval teams running benchmark suites from cloud GPU boxes; team keys share card and org."""
    rng = b.rng
    for _ in range(n_teams):
        org, card = new_id(rng, b.used, "org", 6), new_id(rng, b.used, "pm", 8)
        asn = pick(rng, DATACENTER + UNIVERSITY)[0]
        net = Net("dc", [b.ips.addr(rng, asn) for _ in range(int(rng.integers(1, 4)))])
        style = pick(rng, ["completions", "chat"])
        benches = [str(x) for x in rng.choice(["gsm8k", "humaneval", "mbpp", "bfcl", "mtbench"], size=3, replace=False)]
        for _member in range(int(rng.integers(1, 4))):
            params = {
                "runs": float(rng.uniform(0.5, 3)),
                "on_release": float(rng.uniform(0.3, 0.9)),
                "style": style,
                "benches": benches,
                "gap": logu(rng, 0.15, 2.0),
                "judge_model": b.shared["judge_model"],
                "mini": 0.15,
            }
            b.add(
                "eval-harness",
                "eval",
                0.0,
                net,
                client_for(rng, b.shared, pick(rng, ["openai-python", "httpx", "litellm"])),
                TZ.get(net.main[0][2], 0.0),
                org=org,
                payment=card,
                signup=pick(rng, ["standard", "research", "startup"]),
                email=f"{pick(rng, WORDS)}-ai.com",
                params=params,
                tier="scale",
            )


def build_classes(b: Builder, n_classes: int) -> None:
    """University classes: students sign up together, share the campus NAT, meet in weekly lab sessions."""
    rng = b.rng
    for k in range(n_classes):
        asn, cc = pick(rng, UNIVERSITY)
        campus = [b.ips.addr(rng, asn) for _ in range(int(rng.integers(1, 4)))]
        tz = TZ.get(cc, 0.0)
        when = pick(rng, ["old", "prev", "cur"])
        span = {
            "old": (b.prev_start - 60 * DAY, b.prev_start - 20 * DAY),
            "prev": (b.prev_start, b.prev_start + 3 * DAY),
            "cur": (b.cur_start - DAY, b.cur_start + 2 * DAY),
        }[when]
        signup_day = rng.uniform(*span)
        lab_hour, lab_days = float(rng.integers(9, 16)), list(rng.choice(5, size=2, replace=False))
        first_day = math.floor((b.prev_start + tz * HOUR) / DAY)
        labs = [
            (d * DAY + lab_hour * HOUR - tz * HOUR) for d in range(first_day, first_day + 60) if (d + 3) % 7 in lab_days
        ]
        b.shared["classes"].append({"labs": labs, "lab_len": 2 * HOUR, "subject": pick(rng, ["math", "cs"])})
        domain = f"{pick(rng, ['stu', 'student', 'mail'])}.{pick(rng, WORDS)}u.edu"
        for _ in range(int(rng.integers(15, 41))):
            home, _cc = home_net(rng, b.ips, cc)
            created = signup_day + rng.uniform(0, 2 * DAY)
            b.add(
                "students",
                "student",
                logu(rng, 0.2, 2),
                Net("campus", campus, home.main),
                client_for(rng, b.shared, pick(rng, ["openai-python", "openai-python", "requests", "openai-node"])),
                tz,
                signup="education",
                tier="free",
                email=domain,
                country=cc,
                params={"class": k, "lower": chance(rng, 0.5), "mini": 0.5},
                life=(created, created, INF),
            )


RESEARCH_TEMPLATES = {
    "redteam": ["{jb}\n\n{q}", "For a red-teaming evaluation, respond to: {q}", "[SAFETY EVAL] {q}"],
    "reasoning": ["Q: {q}\nA: Let's think step by step.", "{q}\nThink carefully and give your reasoning.",
                  "Answer the question and explain your reasoning.\n{q}"],
    "judge": ["Rate the following response on a 1-10 scale for helpfulness. Output JSON.\n\n{q}",
              "You are an annotator. Judge whether this instruction is clear. Return JSON with score and "
              "rationale.\n{q}"],
}  # fmt: skip


def build_research(b: Builder, n: int) -> None:
    """Academic researchers: interactive use plus scripted studies, from university networks."""
    rng = b.rng
    for _ in range(n):
        asn, cc = pick(rng, UNIVERSITY)
        home, _ = home_net(rng, b.ips, cc)
        net = Net("campus", [b.ips.addr(rng, asn)], home.main)
        study = pick(rng, ["redteam", "reasoning", "reasoning", "judge"])
        params = {
            "study": study,
            "template": pick(rng, RESEARCH_TEMPLATES[study]),
            "runs": float(rng.uniform(0.3, 2)),
            "run_size": int(rng.integers(80, 400)),
            "temp": pick(rng, [0.0, 0.7, 1.0]),
            "cot": 0.6,
            "code": 0.2,
            "effort": 0.2,
            "delay_new": logu(rng, 0.2, 4) * DAY if chance(rng, 0.6) else INF,
        }
        b.add(
            "research",
            "research",
            logu(rng, 1, 15),
            net,
            client_for(rng, b.shared),
            TZ.get(cc, 0.0),
            signup="research",
            email=f"{pick(rng, WORDS)}.edu",
            params=params,
            country=cc,
        )


def build_offices(b: Builder, n: int) -> None:
    """Small companies: employees with their own accounts on the company card, behind the office NAT."""
    rng = b.rng
    for _ in range(n):
        asn, cc = pick(rng, RESIDENTIAL)
        office: dict[str, Any] = {
            "ips": [b.ips.addr(rng, asn)],
            "card": new_id(rng, b.used, "pm", 8),
            "org": new_id(rng, b.used, "org", 6) if chance(rng, 0.5) else None,
            "domain": f"{pick(rng, WORDS)}{pick(rng, WORDS)}.io",
            "population": "shared-office",
        }
        staff = int(rng.integers(3, 12))
        devs = int(rng.integers(1, staff + 1))
        build_developers(b, devs, office)
        for _ in range(staff - devs):
            home, _ = home_net(rng, b.ips, cc)
            params = {"system": None, "code": 0.1, "cot": 0.1, "mini": 0.3}
            b.add(
                "shared-office",
                "chat",
                logu(rng, 0.5, 6),
                Net("office", office["ips"], home.main),
                client_for(rng, b.shared),
                TZ.get(cc, 0.0),
                payment=office["card"],
                org=office["org"],
                email=office["domain"],
                params=params,
                country=cc,
            )


def shared_world(rng: Rng, ips: IpSpace, fam: str) -> dict[str, Any]:
    """Things many accounts share: TLS stacks, dev tools, the popular app, VPN and CGNAT pools."""
    tls = {
        sdk: [
            f"t13d{int(rng.integers(10, 19))}{int(rng.integers(10, 16))}h2_{hexid(rng, 12)}_{hexid(rng, 12)}"
            for _ in range(2)
        ]
        for sdk in SDKS
    }
    products = []
    for i in range(int(rng.integers(3, 6))):
        name = f"{pick(rng, WORDS).title()}{pick(rng, ['Code', 'Pilot', 'Dev', 'Agent'])}"
        scheme = TOOL_SCHEMES[i % len(TOOL_SCHEMES)]
        system = (
            f"You are {name}, an AI coding assistant running in the user's editor. You can read and edit files "
            f"and run commands with the provided tools. Make minimal, correct changes. " + _prose(rng, name, 5)
        )
        products.append(
            {
                "name": name,
                "scheme": scheme,
                "system": system,
                "sdk": pick(rng, ["openai-node", "anthropic-ts", "openai-python", "anthropic-python"]),
                "chat_system": f"You are {name} chat. Answer coding questions.",
            }
        )
    kind = pick(rng, ["tutor", "writing", "code"])
    app_name = f"{pick(rng, WORDS).title()}{pick(rng, ['Mate', 'Buddy', 'Pal', 'Genie'])}"
    app_system = {
        "tutor": f"You are {app_name}, a patient math tutor. Explain every solution step by step so the "
        f"student can follow, then state the final answer.",
        "writing": f"You are {app_name}. Rewrite the user's text to be clearer and more professional.",
        "code": f"You are {app_name}, a helpful programming assistant.",
    }[kind]
    app = {
        "kind": kind,
        "system": app_system,
        "ua": f"{app_name}/{int(rng.integers(1, 5))}.{int(rng.integers(0, 9))}.2 "
        f"({pick(rng, ['Macintosh', 'Windows NT 10.0', 'iPhone'])})",
        "tls": pick(rng, tls["openai-node"]),
        "shape": "chat",
        "temp": 0.7,
        "model": f"{fam}-2-mini",
    }
    vpn_asn = pick(rng, VPN_HOSTING)[0]
    vpn = [ips.addr(rng, vpn_asn) for _ in range(int(rng.integers(15, 40)))]
    cgnat = {asn: [ips.addr(rng, asn) for _ in range(12)] for asn, _ in MOBILE}
    return {
        "tls": tls,
        "dev_products": products,
        "app": app,
        "vpn_pool": vpn,
        "cgnat": cgnat,
        "classes": [],
        "enterprise_templates": ENTERPRISE_TEMPLATES,
        "judge_model": f"{fam}-2",
    }


def build_benign(b: Builder, scale: float) -> None:
    """Every benign population, sizes drawn per seed."""
    rng = b.rng

    def k(lo: int, hi: int) -> int:
        return max(1, round(int(rng.integers(lo, hi + 1)) * scale))

    build_chat(b, k(260, 400), vpn=False)
    build_chat(b, k(15, 45), vpn=True)
    build_developers(b, k(70, 140))
    build_power(b, k(12, 30))
    build_enterprise(b, k(4, 8))
    build_saas(b, k(4, 9))
    build_app_users(b, k(40, 110))
    build_eval(b, k(3, 7))
    build_classes(b, k(1, 3))
    build_research(b, k(12, 30))
    build_offices(b, k(3, 7))


# ------------------------------------------------------------------ world: campaigns

FOCI = ["agentic", "tool-use", "coding", "reasoning", "vision", "safety", "general"]


def _focus_mix(rng: Rng, k: int) -> dict[str, float]:
    """The capability mix of campaign ``k``: the three disclosed ones, then random ones."""
    if k == 0:
        return {
            "agentic": float(rng.uniform(0.4, 0.7)),
            "tool-use": float(rng.uniform(0.1, 0.3)),
            "coding": float(rng.uniform(0.05, 0.3)),
        }
    if k == 1:
        return {f: float(rng.uniform(0.1, 0.4)) for f in ("reasoning", "tool-use", "coding", "vision")}
    if k == 2:
        return {"reasoning": float(rng.uniform(0.3, 0.7)), "safety": float(rng.uniform(0.3, 0.7))}
    chosen = rng.choice(FOCI, size=int(rng.integers(1, 4)), replace=False)
    return {str(f): float(rng.uniform(0.2, 1.0)) for f in chosen}


def draw_tactics(rng: Rng, k: int, scale: float) -> dict[str, Any]:
    """Tactics of campaign ``k``, drawn from the disclosure and plausible variants."""
    sizes = [(40, 300), (15, 150), (4, 40)]
    rates = [(800, 2500), (200, 1000), (40, 300)]
    lo, hi = sizes[k] if k < 3 else (3, 250)
    rlo, rhi = rates[k] if k < 3 else (20, 800)
    timing = wpick(rng, {"synchronized": 0.3, "jittered-sync": 0.25, "bursty": 0.2, "human-like": 0.25})
    elicitation = wpick(rng, {"explicit": 0.35, "system": 0.15, "api-param": 0.2, "prior-turn": 0.1, "none": 0.2})
    if k == 2:
        elicitation = wpick(rng, {"explicit": 0.5, "system": 0.2, "api-param": 0.2, "prior-turn": 0.1})
    return {
        "focus": _focus_mix(rng, k),
        "n_accounts": max(2, round(logu(rng, lo, hi) * scale)),
        "daily_volume": max(10, round(logu(rng, rlo, rhi) * scale)),
        "accounts": wpick(rng, {"fresh-burst": 0.45, "aged": 0.25, "mixed": 0.2, "bought": 0.1}),
        "signup": wpick(rng, {"standard": 0.6, "education": 0.15, "startup": 0.15, "research": 0.1}),
        "email": wpick(rng, {"disposable": 0.3, "webmail": 0.4, "custom-domain": 0.2, "mixed": 0.1}),
        "proxy": wpick(
            rng,
            {
                "residential-rotating": 0.35,
                "residential-sticky": 0.2,
                "datacenter": 0.2,
                "vpn-shared": 0.1,
                "mixed": 0.15,
            },
        ),
        "payment": wpick(rng, {"shared": 0.35, "clustered": 0.25, "unique": 0.25, "free": 0.15}),
        "org": wpick(rng, {"none": 0.7, "shell-org": 0.15, "own-orgs": 0.15}),
        "client": wpick(rng, {"shared-sdk": 0.45, "custom": 0.25, "rotated": 0.3}),
        "templates": wpick(rng, {"fixed": 0.3, "paraphrased": 0.45, "diverse": 0.25}),
        "elicitation": elicitation,
        "elicit_focus": ["reasoning", "coding", "safety", "vision", "general", "tool-use"]
        if chance(rng, 0.5)
        else ["reasoning", "safety"],
        "json": chance(rng, 0.25),
        "n_samples": 1 if chance(rng, 0.75) else int(rng.integers(2, 5)),
        "temperature": pick(rng, [0.0, 0.7, 1.0, "sweep", None]),
        "max_tokens": int(pick(rng, [4096, 8192, 16000, 32000])),
        "timing": timing,
        "hours": pick(rng, ["24/7", "shift"]),
        "shift_start": int(rng.integers(0, 24)),
        "shift_len": int(rng.integers(8, 17)),
        "job_every": float(rng.uniform(2, 10)),
        "job_len": float(rng.uniform(0.2, 2.0)),
        "operator_tz": pick(rng, [8.0, 8.0, 8.0, 3.0, -5.0, 1.0]),
        "filler": 0.0 if chance(rng, 0.4) else float(rng.uniform(0.05, 0.4)),
        "pivot": chance(rng, 0.8 if k == 0 else 0.35),
        "pivot_share": float(rng.uniform(0.3, 0.7)),
        "late_adopt_days": float(rng.uniform(2, 12)),
        "release_ramp": float(rng.uniform(1.0, 1.6)),
        "shapes": pick(
            rng,
            [
                {"chat": 1.0},
                {"chat": 0.6, "responses": 0.2, "messages": 0.2},
                {"messages": 1.0},
                {"responses": 1.0},
                {"chat": 0.8, "completions": 0.2},
            ],
        ),
        "agent_mode": pick(rng, ["loop", "fabricated"]),
        "agent_scheme": 0,
        "conv_ids": chance(rng, 0.5),
        "augment": float(rng.uniform(0, 0.5)),
        "jailbreak": 0.0 if chance(rng, 0.6) else float(rng.uniform(0.05, 0.3)),
        "overlap": float(rng.uniform(0.55, 0.95)),
        "retired": float(rng.uniform(0.05, 0.3)),
        "redact": chance(rng, 0.06),
        "mimic_agent_prompt": chance(rng, 0.4),
    }


def _campaign_net(rng: Rng, b: Builder, tac: dict[str, Any], pool: list[Addr], n: int) -> list[Net]:
    """Per-account network of a campaign's accounts, by proxy tactic."""
    mode = tac["proxy"]
    nets = []
    for i in range(n):
        m = mode if mode != "mixed" else ("residential-rotating" if i % 2 else "datacenter")
        if m in ("residential-rotating", "vpn-shared"):
            nets.append(Net("pool", [pool[0]], pool=pool))
        elif m == "residential-sticky":
            nets.append(Net("sticky", [pick(rng, pool) for _ in range(int(rng.integers(1, 3)))]))
        else:
            k = int(rng.integers(1, 4))
            nets.append(Net("dc", [pick(rng, pool) for _ in range(k)]))
    return nets


def _campaign_pool(rng: Rng, b: Builder, tac: dict[str, Any]) -> list[Addr]:
    mode = tac["proxy"]
    if mode == "vpn-shared":
        return list(b.shared["vpn_pool"]) + [b.ips.addr(rng, pick(rng, VPN_HOSTING)[0]) for _ in range(20)]
    if mode == "datacenter":
        asns = [pick(rng, DATACENTER + VPN_HOSTING)[0] for _ in range(int(rng.integers(1, 4)))]
        return [b.ips.addr(rng, pick(rng, asns)) for _ in range(int(rng.integers(5, 60)))]
    size = int(rng.integers(300, 3000))
    cc_pool = [x for x in RESIDENTIAL if x[1] in ("US", "GB", "DE", "JP", "SG", "KR", "CA", "AU")]
    res = [b.ips.addr(rng, pick(rng, cc_pool)[0]) for _ in range(size)]
    if mode == "mixed":
        res += [b.ips.addr(rng, pick(rng, DATACENTER)[0]) for _ in range(30)]
    return res


def _campaign_lives(rng: Rng, b: Builder, tac: dict[str, Any], n: int) -> list[tuple[float, float, float, bool]]:
    """(created, start, end, bought) per account: most active in both periods, some retired, some new."""
    days = b.cur_end - b.cur_start
    camp_start = (
        b.prev_start - logu(rng, 1, 60) * DAY if chance(rng, 0.6) else b.prev_start + rng.uniform(0, 0.5) * days
    )
    n_new = round(n * (1 - tac["overlap"]))
    n_ret = round(n * tac["retired"])
    fresh_waves = [camp_start + rng.uniform(0, max(HOUR, b.prev_start + 0.4 * days - camp_start)) for _ in range(3)]
    new_waves = [b.cur_start + rng.uniform(0, 0.7) * days for _ in range(int(rng.integers(1, 4)))]
    out = []
    for i in range(n + n_ret):
        new, retired = i < n_new, i >= n
        wave = pick(rng, new_waves if new else fresh_waves)
        start = wave + rng.uniform(0, 3 * HOUR)
        end = (
            rng.uniform(b.prev_start + 0.2 * days, b.cur_start)
            if retired
            else (rng.uniform(b.cur_start + 0.3 * days, b.cur_end) if chance(rng, 0.1) else INF)
        )
        fresh = tac["accounts"] == "fresh-burst" or (tac["accounts"] == "mixed" and chance(rng, 0.5))
        created = wave - rng.uniform(0, 6 * HOUR) if fresh else start - logu(rng, 30, 900) * DAY
        bought = tac["accounts"] == "bought" and new and chance(rng, 0.7)
        out.append((created, start, end, bought))
    return out


def _identity(rng: Rng, b: Builder, tac: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Sign-up record fields per account, by payment, email, sign-up and org tactics."""
    cards = [new_id(rng, b.used, "pm", 8) for _ in range(int(rng.integers(1, 4)))]
    domain = f"{pick(rng, WORDS)}{pick(rng, WORDS)}.{pick(rng, ['com', 'net', 'io', 'cn', 'ai'])}"
    shell = new_id(rng, b.used, "org", 6)
    out = []
    for _ in range(n):
        pay = {"shared": pick(rng, cards), "clustered": "cluster", "unique": "new", "free": None}[tac["payment"]]
        email = {
            "disposable": pick(rng, DISPOSABLE),
            "webmail": pick(rng, WEBMAIL),
            "custom-domain": domain,
            "mixed": pick(rng, [*DISPOSABLE, *WEBMAIL, domain]),
        }[tac["email"]]
        signup = tac["signup"]
        if signup == "education":
            email = (
                f"{pick(rng, ['mail', 'stu'])}.{pick(rng, WORDS)}{pick(rng, WORDS)}.edu" if chance(rng, 0.7) else email
            )
        org = {"none": None, "shell-org": shell, "own-orgs": "new"}[tac["org"]]
        out.append(
            {
                "payment": pay,
                "email": email,
                "signup": signup,
                "org": org,
                "tier": "free" if tac["payment"] == "free" else "paid",
            }
        )
    return out


def _clustered_cards(rng: Rng, b: Builder, idents: list[dict[str, Any]]) -> None:
    """Cards each shared by a small group of accounts (3 to 15)."""
    card, left = "", 0
    for ident in idents:
        if ident["payment"] != "cluster":
            continue
        if left == 0:
            card, left = new_id(rng, b.used, "pm", 8), int(rng.integers(3, 16))
        ident["payment"] = card
        left -= 1


def build_campaign(b: Builder, k: int, scale: float, actor: str) -> Campaign:
    """One campaign: tactics, infrastructure, accounts and their lifecycles."""
    rng = b.rng
    tac = draw_tactics(rng, k, scale)
    tac["agent_scheme"] = int(rng.integers(len(b.shared["dev_products"])))
    pool = _campaign_pool(rng, b, tac)
    lives = _campaign_lives(rng, b, tac, tac["n_accounts"])
    nets = _campaign_net(rng, b, tac, pool, len(lives))
    idents = _identity(rng, b, tac, len(lives))
    _clustered_cards(rng, b, idents)
    shared_client = client_for(rng, b.shared, pick(rng, ["openai-python", "anthropic-python", "openai-node"]))
    custom = Client(
        ua=pick(rng, ["python-requests/2.31.0", "Python/3.11 aiohttp/3.9.5", "Go-http-client/2.0"]),
        tls=f"t13d1812h1_{hexid(rng, 12)}_{hexid(rng, 12)}",
        shapes={"chat": 1.0},
    )
    start_idx = len(b.accounts)
    for (created, start, end, bought), net, ident in zip(lives, nets, idents, strict=True):
        client = {"shared-sdk": shared_client, "custom": custom}.get(tac["client"]) or client_for(rng, b.shared)
        cc = pick(rng, net.pool or net.main)[2]
        if ident["org"] == "new":
            ident["org"] = new_id(rng, b.used, "org", 6)
        life = (created, start, end)
        a = b.add(
            "attack",
            "attack",
            float(rng.lognormal(0, 0.5)),
            net,
            client,
            tac["operator_tz"],
            life=life,
            country=cc,
            params={"redact": tac["redact"]},
            **ident,
        )
        a.campaign = k
        if bought:
            a.created = start - logu(rng, 60, 900) * DAY
            a.attack_from = start
            a.start = a.created
            a.params.update({"code": 0.1, "cot": 0.1, "system": None, "mini": 0.3, "prior_rate": logu(rng, 0.2, 3)})
    days = (b.cur_end - b.cur_start) / DAY
    daily = tac["daily_volume"]
    volume = {"current": int(daily * days), "previous": int(daily * days * rng.uniform(0.6, 1.2))}
    wrappers = _wrappers(rng, tac)
    system = _systems(rng, tac, b)
    return Campaign(
        k,
        f"camp-{chr(ord('a') + k)}{hexid(rng, 3)}",
        actor,
        "+".join(sorted(tac["focus"])),
        tac,
        b.accounts[start_idx:],
        volume,
        wrappers,
        system,
        pool,
        rng.uniform(1, 20) * HOUR,
    )


def _wrappers(rng: Rng, tac: dict[str, Any]) -> dict[str, list[str]]:
    n = {"fixed": int(rng.integers(1, 4)), "paraphrased": int(rng.integers(20, 200)), "diverse": 400}[tac["templates"]]
    out = {}
    for focus in [*FOCI, "general"]:
        cot = tac["elicitation"] == "explicit" and focus in tac["elicit_focus"]
        out[focus] = [make_wrapper(rng, focus, cot) for _ in range(n)]
    return out


def _systems(rng: Rng, tac: dict[str, Any], b: Builder) -> list[str]:
    if tac["mimic_agent_prompt"] and "agentic" in tac["focus"]:
        return [b.shared["dev_products"][tac["agent_scheme"]]["system"]]
    if tac["elicitation"] != "system":
        return []
    base = [
        "You are a meticulous expert. For every question, reason step by step in detail before answering and "
        "show all intermediate work.",
        "Always think through problems carefully, writing out your complete "
        "reasoning process, then give the final answer.",
        "You are a world-class tutor. Explain your full chain of thought for every answer.",
    ]
    n = 1 if tac["templates"] == "fixed" else len(base)
    return [pick(rng, base) for _ in range(n)]


# ------------------------------------------------------------------ world


def build_world(seed: int, scale: float) -> World:
    """Everything a seed fixes: timeline, releases, benign customers, campaigns."""
    rng = np.random.default_rng([seed, 20260201])
    days = int(rng.integers(7, 15))
    cur_start = datetime(2026, 1, 5, tzinfo=UTC).timestamp() + int(rng.integers(0, 60)) * DAY
    gap = int(rng.integers(0, 4)) * DAY
    prev_start = cur_start - gap - days * DAY
    periods = {"current": (cur_start, cur_start + days * DAY), "previous": (prev_start, prev_start + days * DAY)}
    fam = pick(rng, FAMILIES)
    hour = int(rng.integers(14, 20)) * HOUR
    rel_mid = math.floor((prev_start + rng.uniform(0.2, 0.6) * days * DAY) / DAY) * DAY + hour
    rel_new = math.floor((cur_start + rng.uniform(0.25, 0.65) * days * DAY) / DAY) * DAY + hour
    models = Models(fam, rel_mid, rel_new, prev_start - 60 * DAY)
    ips = IpSpace.build(rng)
    shared = shared_world(rng, ips, fam)
    b = Builder(rng, ips, shared, models.born, prev_start, cur_start, cur_start + days * DAY)
    build_benign(b, scale)
    n_camps = int(rng.integers(3, 6))
    actors = [f"actor-{chr(ord('a') + i)}" for i in range(n_camps)]
    campaigns = []
    for k in range(n_camps):
        actor = actors[k] if k < 3 or not chance(rng, 0.25) else actors[int(rng.integers(3))]
        campaigns.append(build_campaign(b, k, scale, actor))
    order = rng.permutation(len(b.accounts))
    accounts = [b.accounts[i] for i in order]  # row order carries no label
    return World(seed, scale, days, periods, models, accounts, campaigns, ips, shared)


def describe(world: World) -> list[dict[str, Any]]:
    """The campaigns of a world with their drawn tactics (for benchmark reports)."""
    keep = [
        "n_accounts",
        "daily_volume",
        "accounts",
        "signup",
        "email",
        "proxy",
        "payment",
        "org",
        "client",
        "templates",
        "elicitation",
        "json",
        "n_samples",
        "timing",
        "hours",
        "filler",
        "pivot",
        "pivot_share",
        "shapes",
        "agent_mode",
        "overlap",
        "redact",
        "mimic_agent_prompt",
        "operator_tz",
    ]
    out = []
    for c in world.campaigns:
        tac = {k: c.tactics[k] for k in keep}
        tac["focus"] = {k: round(v / sum(c.tactics["focus"].values()), 2) for k, v in c.tactics["focus"].items()}
        out.append(
            {"campaign_id": c.campaign_id, "actor": c.actor, "style": c.style, "tactics": tac, "volume": c.volume}
        )
    return out


# ------------------------------------------------------------------ rendering a period


def _redact(body: Any) -> Any:
    """Null every free-text field (a zero-retention customer's logs)."""
    if isinstance(body, dict):
        return {
            k: (
                None
                if k in ("content", "text", "system", "instructions", "prompt", "input", "output")
                and isinstance(v, str)
                else _redact(v)
            )
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_redact(v) for v in body]
    return body


def _error_row(rng: Rng, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A refused request: rate limit, overload, malformed body, or rejected before the model ran."""
    r = rng.random()
    if r < 0.5:
        return body, {
            "status": 429,
            "error": {"type": "rate_limit_error", "message": "Rate limit exceeded"},
            "content": None,
            "tool_calls": [],
            "usage": None,
            "latency_ms": int(rng.integers(5, 40)),
        }
    if r < 0.7:
        return body, {
            "status": 529,
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "content": None,
            "tool_calls": [],
            "usage": None,
            "latency_ms": int(rng.integers(50, 3000)),
        }
    if r < 0.9:
        bad = dict(body)
        if "messages" in bad:
            bad["messages"] = pick(rng, ["hello", [{"role": "user"}], None])
        else:
            bad = {}
        return bad, {
            "status": 400,
            "error": {"type": "invalid_request_error", "message": "Invalid request body"},
            "content": None,
            "tool_calls": [],
            "usage": None,
            "latency_ms": int(rng.integers(2, 20)),
        }
    return body, None


def exchange_row(ctx: Ctx, a: Account, ex: Ex, rng: Rng) -> dict[str, Any]:
    """One exchanges row as the gateway logs it."""
    shape = ex.shape or wpick(rng, a.client.shapes)
    if shape == "completions" and (ex.req.tools or any(m.images or m.calls or m.role == "tool" for m in ex.req.msgs)):
        shape = "chat"
    body = RENDER[shape](ex.req, ex.model)
    ip, asn, cc = a.net.pick(rng, ex.t, a.tz)
    key = a.keys[0] if len(a.keys) == 1 or chance(rng, 0.6) else pick(rng, a.keys)
    response: dict[str, Any] | None = response_row(rng, ex.req, ex.resp, ctx.world.models.speed(ex.model))
    if chance(rng, 0.004):
        body, response = _error_row(rng, body)
    if a.params.get("redact"):
        body = _redact(body)
        if response is not None:
            response = {**response, "content": None, "reasoning_content": None}
    return {
        "exchange_id": "",
        "timestamp": ex.t,
        "account_id": a.account_id,
        "api_key_id": key,
        "client": {"ip": ip, "asn": asn, "country": cc, "user_agent": a.client.ua, "tls_fingerprint": a.client.tls},
        "endpoint": ENDPOINT[shape],
        "request": body,
        "response": response,
        "conversation_id": ex.conv,
    }


def _period_key(period: str) -> int:
    return {"current": 1, "previous": 2}[period]


def render_period(
    world: World, corpus: Corpus, period: str, benign_only: bool
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """All exchanges of one period (sorted by time) and the labels of the accounts seen in it."""
    lo, hi = world.periods[period]
    ctx = Ctx(world, corpus, period)
    pk = _period_key(period)
    rows: list[dict[str, Any]] = []
    labels: dict[str, dict[str, Any]] = {}
    for a in world.accounts:
        rng = np.random.default_rng([world.seed, pk, 1, a.idx])
        if a.behaviour == "attack":
            if a.attack_from == -INF:
                continue
            s, e = _span(a, lo, hi)
            exs = gen_chat(ctx, _as_owner(a), s, e, rng) if e > s else []
        else:
            s, e = _span(a, lo, hi)
            exs = BEHAVIOURS[a.behaviour](ctx, a, s, e, rng) if e > s else []
        rows += [exchange_row(ctx, a, ex, rng) for ex in exs if lo <= ex.t < hi]
        if exs:
            labels[a.account_id] = {
                "account_id": a.account_id,
                "is_attack": False,
                "campaign_id": None,
                "actor": None,
                "style": None,
                "population": a.population if a.behaviour != "attack" else "chat",
            }
    if not benign_only:
        for camp in world.campaigns:
            rng = np.random.default_rng([world.seed, pk, 2, camp.idx])
            for a, ex in gen_campaign(ctx, camp, lo, hi, rng):
                rows.append(exchange_row(ctx, a, ex, rng))
                labels[a.account_id] = {
                    "account_id": a.account_id,
                    "is_attack": True,
                    "campaign_id": camp.campaign_id,
                    "actor": camp.actor,
                    "style": camp.style,
                    "population": None,
                }
    rows.sort(key=lambda r: r["timestamp"])
    for i, r in enumerate(rows):
        r["exchange_id"] = f"ex-{pk}{i + 1:08d}"
        r["timestamp"] = iso(r["timestamp"])
    return rows, labels


def _as_owner(a: Account) -> Account:
    """A bought account as its previous, ordinary owner used it."""
    return Account(**{**a.__dict__, "rate": a.params["prior_rate"], "behaviour": "chat", "population": "chat"})


def write_period(out: Path, world: World, corpus: Corpus, period: str, benign_only: bool) -> dict[str, Any]:
    """Write the traffic directory for one period; returns counts."""
    rows, labels = render_period(world, corpus, period, benign_only)
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "exchanges.jsonl.gz", "wb", compresslevel=3) as fh:
        for r in rows:
            fh.write(_dumps(r) + b"\n")
    seen = {a.account_id: a for a in world.accounts if a.account_id in labels}
    _write_jsonl(out / "accounts.jsonl", [a.record() for a in seen.values()])
    _write_jsonl(out / "labels.jsonl", list(labels.values()))
    hi = world.periods[period][1]
    events = [
        {"timestamp": iso(t, ms=False), "type": "model_release", "model": m}
        for t, m in world.models.releases()
        if t < hi
    ]
    _write_jsonl(out / "events.jsonl", events)
    return summary(rows, labels)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "wb") as fh:
        for r in rows:
            fh.write(_dumps(r) + b"\n")


def summary(rows: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Accounts and exchanges per population and campaign."""
    per_acct: dict[str, int] = {}
    for r in rows:
        per_acct[r["account_id"]] = per_acct.get(r["account_id"], 0) + 1
    groups: dict[str, list[int]] = {}
    for acct, lab in labels.items():
        g = lab["campaign_id"] or lab["population"]
        groups.setdefault(g, [0, 0])
        groups[g][0] += 1
        groups[g][1] += per_acct.get(acct, 0)
    return {
        "accounts": len(labels),
        "exchanges": len(rows),
        "groups": {k: {"accounts": v[0], "exchanges": v[1]} for k, v in sorted(groups.items())},
    }


def default_data_dir() -> Path:
    """``DISTILLGUARD_DATA_DIR``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("DISTILLGUARD_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--period", choices=["current", "previous"], default="current")
    ap.add_argument("--benign-only", action="store_true", help="drop the campaigns' accounts (a vetted reference)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of accounts and campaign volume")
    ap.add_argument("--data-dir", type=Path, default=None, help="public prompt datasets (default: shared/data)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    corpus = load_corpus(args.data_dir or default_data_dir())
    world = build_world(args.seed, args.scale)
    stats = write_period(args.out, world, corpus, args.period, args.benign_only)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    stats["period"] = {"start": iso(world.periods[args.period][0]), "end": iso(world.periods[args.period][1])}
    print(json.dumps(stats, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
