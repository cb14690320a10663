"""Distillation forensics: hypothesis tests that return ``TestResult`` with exact p-values.

Imported lazily (scipy, torch load on first use), so the CLI starts without them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TestResult": "stats", "binomial_test": "stats", "holm": "evidence", "Evidence": "evidence",
            "radioactivity_open": "radioactivity", "radioactivity_from_tokens": "radioactivity",
            "canary_open": "canary", "canary_closed": "canary"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"distillguard.forensics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'distillguard.forensics' has no attribute {name!r}")
