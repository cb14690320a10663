"""Distillation forensics: hypothesis tests that return ``TestResult`` with exact p-values."""

from distillguard.forensics.stats import TestResult, binomial_test

__all__ = ["TestResult", "binomial_test"]
