"""Decisions: the policy table the gateway loads (account or cluster → action)."""

from distillguard.policy.decide import decide

__all__ = ["decide"]
