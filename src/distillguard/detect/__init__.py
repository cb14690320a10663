"""Account scorers (found by the registry) and the calibration wrapper."""

from __future__ import annotations

import sys

from distillguard._registry import discover
from distillguard.detect.base import Calibrated, Scorer

__all__ = ["Calibrated", "Scorer", "registered_scorers"]


def registered_scorers() -> list[type[Scorer]]:
    """Every ``Scorer`` subclass defined in this package, by name."""
    return discover(sys.modules[__name__], Scorer)  # type: ignore[type-abstract]
