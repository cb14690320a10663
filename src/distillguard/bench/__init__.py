"""Score a scan against ground-truth labels (see ``bench.evaluate``)."""

from distillguard.bench.evaluate import evaluate, metrics_table

__all__ = ["evaluate", "metrics_table"]
