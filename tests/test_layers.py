"""Dependencies match use: what the scan and the gateway import is core, the lab extra stays in its packages.

The imports are read from the source (``ast``), not by importing it, so a
module-level import hidden behind another module still counts. The one-way
layers between packages are import-linter's contracts (``[tool.importlinter]``).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PYPROJECT = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]

# What `distillguard scan` and `distillguard gateway` load: the CLI, the stages, the gateway and every
# module of the registry's plugin packages (imported at run time, not by an import statement).
PLUGIN_PACKAGES = ("distillguard.signals", "distillguard.detect")
ROOTS = ("distillguard", "distillguard.cli", "distillguard.pipeline", "distillguard.gateway.server",
         "distillguard.gateway.app", *(f"{p}.{f.stem}" for p in PLUGIN_PACKAGES
                                       for f in SRC.joinpath(*p.split(".")).glob("*.py")))
LAB_PACKAGES = ("distillguard.lab", "distillguard.models", "distillguard.watermark", "distillguard.forensics")
PINNED_ONLY = {"sqlglot"}  # declared to pin what ibis may pull in, never imported
DISTRIBUTIONS = packages_distributions()  # module → the installed distributions that provide it


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _module_file(module: str) -> Path | None:
    path = SRC.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """(statement, imported name) at module level (class bodies and module-level blocks included,
    ``if TYPE_CHECKING`` excluded) or, with ``module_level=False``, inside functions only."""

    def visit(nodes: list[ast.stmt], in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from visit(node.orelse, in_function)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom) and in_function != module_level:
                if isinstance(node, ast.Import):
                    yield from ((node, alias.name) for alias in node.names)
                elif node.module and not node.level:
                    yield node, node.module
                    yield from ((node, f"{node.module}.{alias.name}") for alias in node.names)
            inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from visit([c for c in children if isinstance(c, ast.stmt | ast.ExceptHandler)], inner)

    yield from visit(tree.body, False)


def _third_party(name: str) -> str | None:
    top = name.split(".")[0]
    return None if top in sys.stdlib_module_names or top in ("distillguard", "__future__") else top


def _distributions(module: str) -> set[str]:
    return {_name(d) for d in DISTRIBUTIONS.get(module, [module])}


def _reached_at_module_level(roots: tuple[str, ...]) -> dict[str, set[str]]:
    """Third-party module → the distillguard modules that import it at module level, from ``roots`` onward."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        module = stack.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module runs its packages
        for _, name in _imports(ast.parse(path.read_text()), module_level=True):
            top = _third_party(name)
            if top is None:
                stack.append(name)
            else:
                found.setdefault(top, set()).add(module)
    return found


def test_the_scan_and_gateway_import_only_core_dependencies() -> None:
    core = {_name(r) for r in PYPROJECT["dependencies"]}
    missing = {top: sorted(users) for top, users in _reached_at_module_level(ROOTS).items()
               if not _distributions(top) & core}
    assert not missing, f"imported on the scan/gateway path but not a core dependency: {missing}"


def test_every_core_dependency_is_used() -> None:
    used = {d for path in SRC.rglob("*.py") for level in (True, False)
            for _, name in _imports(ast.parse(path.read_text()), level)
            if (top := _third_party(name)) for d in _distributions(top)}
    unused = {_name(r) for r in PYPROJECT["dependencies"]} - used - PINNED_ONLY
    assert not unused, f"core dependencies nothing imports (move them to an extra or to dev): {sorted(unused)}"


def test_the_lab_extra_is_imported_only_by_the_lab_packages_or_lazily_with_a_reason() -> None:
    lab_extra = {m for m, dists in DISTRIBUTIONS.items()
                 if {_name(d) for d in dists} & {_name(r) for r in PYPROJECT["optional-dependencies"]["lab"]}}
    wrong = []
    for path in SRC.rglob("*.py"):
        module, lines = _module_name(path), path.read_text().splitlines()
        if module.startswith(LAB_PACKAGES):
            continue
        tree = ast.parse("\n".join(lines))
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)
                   and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in t.handlers)
                   for s in t.body for n in ast.walk(s)}
        for level in (True, False):
            for node, name in _imports(tree, level):
                if _third_party(name) not in lab_extra:
                    continue
                commented = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].lstrip().startswith("#")
                if level or not (commented or id(node) in guarded):
                    wrong.append(f"{path.relative_to(SRC)}:{node.lineno} imports {name}")
    assert not wrong, wrong
