"""Labelled traffic simulator: benign populations and distillation campaigns.

``generate(load_scenario("demo"), out_dir, seed=0)`` writes a traffic directory
as the exchange-log spec describes (exchanges, accounts, events, labels).
The same seed (and library versions) gives the same bytes.
"""

from distillguard.sim.generate import GenerateStats, generate
from distillguard.sim.scenario import BUILTIN_NAMES, Group, Scenario, builtin, load_scenario

__all__ = ["BUILTIN_NAMES", "GenerateStats", "Group", "Scenario", "builtin", "generate", "load_scenario"]
