"""Per-account fingerprints, written once in Ibis so they run on any engine, and the topic
statistics measured against a reference (``topic_distance``)."""

from distillguard.features.account import account_features
from distillguard.features.topic_distance import TopicDistance

__all__ = ["TopicDistance", "account_features"]
