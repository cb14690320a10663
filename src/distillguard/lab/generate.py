"""Moved to ``distillguard.models.generate`` (below the lab, forensics and watermarks); kept for scripts."""

from distillguard.models.generate import THINK_CLOSE, THINK_OPEN, Channels, Model, Row, Sampling

__all__ = ["THINK_CLOSE", "THINK_OPEN", "Channels", "Model", "Row", "Sampling"]
