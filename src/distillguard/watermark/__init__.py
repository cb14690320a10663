"""Watermarks whose traces survive distillation: schemes sharing one keyed PRF, exact detectors.

>>> from distillguard.watermark import load_scheme
>>> load_scheme("tournament", {"key": 42}).layer_keys.shape
torch.Size([30])
"""

from distillguard.watermark.base import SCHEMES, Scheme, load_scheme, register
from distillguard.watermark.greenlist import GreenList
from distillguard.watermark.tournament import Tournament

__all__ = ["SCHEMES", "GreenList", "Scheme", "Tournament", "load_scheme", "register"]
