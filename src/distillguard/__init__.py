"""distillguard: detect, attribute, deter and prove adversarial distillation of LLM APIs.

The public façade re-exports what most users call; see the README for a tour. Names load on
first use (``__getattr__``): the scan's modules take seconds to import (DuckDB, Ibis,
scikit-learn), and light commands (``--help``, ``watermark keygen``) import this package too.

>>> import distillguard
>>> sorted(distillguard.__all__)[:3]
['Calibrated', 'DistillGuardError', 'IngestReport']
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what ``__getattr__`` returns, for type checkers
    from distillguard.config import Settings, load_settings
    from distillguard.detect import Calibrated, KNNNoveltyScorer, RobustZScorer, Scorer
    from distillguard.errors import DistillGuardError, InputError
    from distillguard.ingest import IngestReport, ingest_traffic_dir
    from distillguard.pipeline import ScanResult, scan
    from distillguard.store import Store

try:
    __version__ = version("distillguard")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

_EXPORTS = {
    "Settings": "config", "load_settings": "config",
    "Calibrated": "detect", "KNNNoveltyScorer": "detect", "RobustZScorer": "detect", "Scorer": "detect",
    "DistillGuardError": "errors", "InputError": "errors",
    "IngestReport": "ingest", "ingest_traffic_dir": "ingest",
    "ScanResult": "pipeline", "scan": "pipeline",
    "Store": "store",
}

__all__ = [
    "Calibrated",
    "DistillGuardError",
    "IngestReport",
    "InputError",
    "KNNNoveltyScorer",
    "RobustZScorer",
    "ScanResult",
    "Scorer",
    "Settings",
    "Store",
    "__version__",
    "ingest_traffic_dir",
    "load_settings",
    "scan",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"distillguard.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'distillguard' has no attribute {name!r}")
