"""Distillation forensics: hypothesis tests that return ``TestResult`` with exact p-values.

Radioactivity and canary tests (``radioactivity``, ``canary``), behavioural
similarity, Holm's combination into an evidence report (``evidence``), and
``examine``, which runs them all on a suspect. The shared exact tests live in
``distillguard.stats``. Imported lazily (scipy, torch load on first use), so
the CLI starts without them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TestResult": "distillguard.stats", "binomial_test": "distillguard.stats",
            "holm": "distillguard.forensics.evidence", "Evidence": "distillguard.forensics.evidence",
            "radioactivity_open": "distillguard.forensics.radioactivity",
            "radioactivity_from_tokens": "distillguard.forensics.radioactivity",
            "canary_open": "distillguard.forensics.canary", "canary_closed": "distillguard.forensics.canary",
            "ExamineOptions": "distillguard.forensics.examine", "examine": "distillguard.forensics.examine"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'distillguard.forensics' has no attribute {name!r}")
