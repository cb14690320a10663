"""Watermarks whose traces survive distillation: schemes sharing one keyed PRF, exact detectors.

Imported lazily (torch and transformers load on first use), so the CLI starts without them.

>>> from distillguard.watermark import load_scheme
>>> load_scheme("tournament", {"key": 42}).layer_keys.shape
torch.Size([30])
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Scheme": "base", "load_scheme": "base", "register": "base", "schemes": "base",
            "GreenList": "greenlist", "Tournament": "tournament", "Keyring": "keyring"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"distillguard.watermark.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'distillguard.watermark' has no attribute {name!r}")
