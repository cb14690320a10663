"""Tasks with a skill worth stealing and exactly checkable answers, each with a step-by-step trace.

Procedural families (seeded, unlimited): multi-digit addition and subtraction
done column by column with carries and borrows, multiplication by partial
products, collecting like terms of a linear expression, and structured tool
calls (a JSON call chosen from a request). Real math word problems come from
GSM8K (MIT; its worked solutions are the traces). A model that writes the
trace gets the answer right far more often than one that answers directly,
which is what makes reasoning traces worth harvesting.

Traces word each step with one of several equivalent phrasings, drawn at
random ("so write 3 carry 1", "then put 3 bring 1"), as natural language
does: a model trained on them has real choices at those points and none in
the arithmetic, which is where a watermark can act without costing accuracy.

>>> t = make_tasks(["add"], 1, seed=3)[0]
>>> t.check(t.answer), t.check("nonsense")
(True, False)
>>> print(make_tasks(["add"], 1, seed=0)[0].reasoning.splitlines()[0])
units: 1 + 0 = 1, so keep 1 move 0
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from distillguard.errors import ConfigError, InputError
from distillguard.models.answers import normalize


@dataclass(frozen=True)
class Task:
    kind: str
    prompt: str
    reasoning: str
    answer: str

    def check(self, output: str | None) -> bool:
        """Whether ``output`` (the model's answer, not its reasoning) is right."""
        return normalize(output) == normalize(self.answer)


# Equivalent wordings of one step, drawn uniformly: the trace's only free choices.
_CONNECT = ("so", "then", "thus", "hence", "and")
_WRITE = ("write", "put", "keep", "note", "set")
_CARRY = ("carry", "bring", "pass", "move")
_BORROW = ("borrow", "take", "owe")
_FINAL = ("final", "last", "leftover")
_TOOL_OPEN = ("the request needs", "this calls for", "the right tool is", "we should call", "best to use")
_ARG_SEP = ("=", "is", "->", "set to")

_PLACES = ("units", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands")


def _add(rng: random.Random) -> Task:
    a, b = rng.randint(10, 9999), rng.randint(10, 9999)
    da, db = str(a)[::-1], str(b)[::-1]
    lines, carry = [], 0
    for i in range(max(len(da), len(db))):
        x, y = int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0
        s = x + y + carry
        lines.append(f"{_PLACES[i]}: {x} + {y}{f' + {carry}' if carry else ''} = {s}, {rng.choice(_CONNECT)} "
                     f"{rng.choice(_WRITE)} {s % 10} {rng.choice(_CARRY)} {s // 10}")
        carry = s // 10
    if carry:
        lines.append(f"{rng.choice(_FINAL)} carry {carry}")
    return Task("add", f"What is {a} + {b}?", "\n".join(lines), str(a + b))


def _sub(rng: random.Random) -> Task:
    a, b = sorted((rng.randint(10, 9999), rng.randint(10, 9999)), reverse=True)
    da, db = str(a)[::-1], str(b)[::-1]
    lines, borrow = [], 0
    for i in range(len(da)):
        x, y = int(da[i]) - borrow, int(db[i]) if i < len(db) else 0
        borrow = 1 if x < y else 0
        r = x + 10 * borrow - y
        lines.append(f"{_PLACES[i]}: {x + 10 * borrow} - {y} = {r}, {rng.choice(_CONNECT)} {rng.choice(_WRITE)} {r}"
                     + (f", {rng.choice(_BORROW)} 1" if borrow else ""))
    return Task("sub", f"What is {a} - {b}?", "\n".join(lines), str(a - b))


def _mul(rng: random.Random) -> Task:
    a, b = rng.randint(12, 999), rng.randint(2, 99)
    parts = []
    for i, digit in enumerate(str(b)[::-1]):
        parts.append(a * int(digit) * 10**i)
    lines = [f"{a} x {int(d) * 10**i} = {p}" for i, (d, p) in enumerate(zip(str(b)[::-1], parts, strict=True))]
    lines.append(" + ".join(str(p) for p in parts) + f" = {a * b}")
    return Task("mul", f"What is {a} x {b}?", "\n".join(lines), str(a * b))


def _terms(rng: random.Random) -> Task:
    var = rng.choice("xyz")
    terms = [(rng.randint(-9, 9) or 1, rng.random() < 0.5) for _ in range(rng.randint(3, 5))]
    text = " ".join((f"{'+' if c > 0 else '-'} {abs(c)}{var if v else ''}") for c, v in terms)
    text = text[2:] if text.startswith("+ ") else "-" + text[2:]
    coef = sum(c for c, v in terms if v)
    const = sum(c for c, v in terms if not v)
    lines = [f"{var} terms: {' + '.join(str(c) for c, v in terms if v) or '0'} = {coef}",
             f"constants: {' + '.join(str(c) for c, v in terms if not v) or '0'} = {const}"]
    answer = " ".join(p for p in [f"{coef}{var}" if coef else "", (f"+ {const}" if const > 0 else f"- {-const}")
                                  if const and coef else (str(const) if const else "")] if p) or "0"
    return Task("terms", f"Simplify {text}", "\n".join(lines), answer)


_CITIES = ("Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Perth", "Dakar", "Hanoi", "Bogota")
_TOOLS: dict[str, Callable[[random.Random], tuple[str, dict[str, object]]]] = {
    "get_weather": lambda r: (f"What is the weather in {(c := r.choice(_CITIES))} in "
                              f"{(u := r.choice(['celsius', 'fahrenheit']))}?", {"city": c, "unit": u}),
    "convert_currency": lambda r: (f"Convert {(n := r.randint(1, 999))} {(a := r.choice(['USD', 'EUR', 'JPY']))} "
                                   f"to {(b := r.choice(['GBP', 'CHF', 'INR']))}",
                                   {"amount": n, "from": a, "to": b}),
    "set_timer": lambda r: (f"Set a timer for {(m := r.randint(1, 90))} minutes", {"minutes": m}),
}


def _tool(rng: random.Random) -> Task:
    name = rng.choice(sorted(_TOOLS))
    request, args = _TOOLS[name](rng)
    reasoning = f"{rng.choice(_TOOL_OPEN)} {name}\n" + "\n".join(f"{k} {rng.choice(_ARG_SEP)} {v}"
                                                                 for k, v in args.items())
    answer = json.dumps({"name": name, "arguments": args}, separators=(",", ":"))
    return Task("tool", f"Tools: {', '.join(sorted(_TOOLS))}. Request: {request}", reasoning, answer)


GENERATORS: dict[str, Callable[[random.Random], Task]] = {
    "add": _add, "sub": _sub, "mul": _mul, "terms": _terms, "tool": _tool,
}
KINDS = (*GENERATORS, "gsm8k")


def make_tasks(kinds: list[str], n: int, *, seed: int, data_dir: Path | None = None) -> list[Task]:
    """``n`` tasks drawn evenly from ``kinds`` (``gsm8k`` needs ``data_dir``), the same for the same seed."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown task kinds {unknown}; choose from {', '.join(KINDS)}")
    rng = random.Random(seed)
    gsm = _gsm8k(data_dir, rng) if "gsm8k" in kinds else []
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        out.append(gsm[(i // len(kinds)) % len(gsm)] if kind == "gsm8k" else GENERATORS[kind](rng))
    return out


def _gsm8k(data_dir: Path | None, rng: random.Random) -> list[Task]:
    if data_dir is None:
        raise ConfigError("gsm8k tasks need the shared data directory (data_dir)")
    path = Path(data_dir) / "gsm8k" / "train.jsonl"
    try:
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    tasks = []
    for r in rows:
        solution, _, answer = r["answer"].rpartition("####")
        tasks.append(Task("gsm8k", r["question"], re.sub(r"<<[^>]*>>", "", solution).strip(), answer.strip()))
    rng.shuffle(tasks)
    return tasks
