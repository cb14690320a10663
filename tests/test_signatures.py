"""Public signatures with four or more parameters are keyword-only after the first one or two.

``prepare(store, "reference", False, slices=True)`` cannot be read without the
definition next to it, and a reordered parameter list silently swaps two
arguments of the same type. So every public function or method (name not
starting with ``_``) that takes four or more parameters, ``self``/``cls`` not
counted, accepts at most two of them by position: the thing operated on and,
at most, one obvious companion such as the store or the data.

The signatures are read from the source (``ast``). The Typer command modules
are left out: Typer calls their functions with keywords, and they are not a
Python API.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "distillguard"
CLI_MODULES = {PACKAGE / "cli.py", PACKAGE / "lab" / "cli.py", PACKAGE / "watermark" / "cli.py",
               PACKAGE / "forensics" / "cli.py"}
MAX_POSITIONAL = 2


def _offenders(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            args = node.args
            positional = [a.arg for a in args.posonlyargs + args.args if a.arg not in ("self", "cls")]
            if len(positional) + len(args.kwonlyargs) >= 4 and len(positional) > MAX_POSITIONAL:
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                found.append(f"{where} {node.name}({', '.join(positional)}, ...)")
    return found


def test_cli_modules_exist() -> None:
    """The exclusions name real files, so none outlives the module it was for."""
    assert all(p.is_file() for p in CLI_MODULES), sorted(str(p) for p in CLI_MODULES if not p.is_file())


def test_long_public_signatures_are_keyword_only() -> None:
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p not in CLI_MODULES)
    assert modules
    offenders = [o for p in modules for o in _offenders(p)]
    assert not offenders, (f"public functions with 4+ parameters take at most {MAX_POSITIONAL} by position; "
                           "insert `*` after the first one or two:\n" + "\n".join(offenders))
