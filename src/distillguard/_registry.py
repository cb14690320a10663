"""Plugin discovery: import every module of a package, collect concrete subclasses.

Used by signals, detectors and (later) watermark schemes, so there is one way
to add a plugin (write one file) and no hand-kept list of names.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")


def discover(package: ModuleType, base: type[T]) -> list[type[T]]:
    """Concrete subclasses of ``base`` defined anywhere in ``package``, by name."""
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    found: dict[str, type[T]] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not getattr(cls, "abstract", False):
            found[getattr(cls, "name", cls.__name__)] = cls
    return [found[k] for k in sorted(found)]
