"""distillguard: detect, attribute, deter and prove adversarial distillation of LLM APIs.

The public façade re-exports what most users call; see the README for a tour.

>>> import distillguard
>>> sorted(distillguard.__all__)[:3]
['Calibrated', 'DistillGuardError', 'IngestReport']
"""

from importlib.metadata import PackageNotFoundError, version

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
