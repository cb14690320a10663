"""``python -m distillguard``: the same command line as ``distillguard``."""

from distillguard.cli import app

app(prog_name="distillguard")
