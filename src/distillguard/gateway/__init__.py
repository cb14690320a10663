"""The distillguard gateway: an OpenAI-compatible proxy that logs, limits and enforces policy.

``keys`` (hashed API keys → accounts) and ``segments`` (the append-only exchange
log that ``scan`` reads) are its foundations.
"""
