"""The distillguard gateway: an OpenAI-compatible proxy that logs, limits and enforces policy.

``keys`` (hashed API keys → accounts) and ``segments`` (the append-only exchange
log that ``scan`` reads) are its foundations; ``app`` routes a request through
``validate`` (the endpoint's API, checked), ``policy`` and ``limits``, then
``upstream``; ``exchange`` makes sure each request is logged once; ``reject``
words every error a client sees; ``server`` serves it with the limits an
exposed endpoint needs (``SECURITY.md`` has the threat model).
"""
