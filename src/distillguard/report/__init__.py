"""Publish stage: the scan output contract (accounts.parquet, campaigns.json, report.html)."""

from distillguard.report.html import render_report
from distillguard.report.publish import write_outputs

__all__ = ["render_report", "write_outputs"]
