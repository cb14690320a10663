"""Per-account fingerprints, written once in Ibis so they run on any engine."""

from distillguard.features.account import account_features

__all__ = ["account_features"]
