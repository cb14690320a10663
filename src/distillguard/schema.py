"""Arrow schemas of every table in the store.

The store holds exchanges *flattened* for analytics (one column per field the
stages read) plus the normalized request as JSON, so nothing a log carried is
lost. ``TABLES`` maps each table name to its schema; the store creates them all.
The ``signals`` table is what the enrichers declare (``signals.signals_schema``).

>>> "exchanges" in tables() and "quarantine" in tables() and tables()["signals"].names[:2]
['exchange_id', 'account_id']
>>> EXCHANGES.field("timestamp").type
TimestampType(timestamp[us, tz=UTC])
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from distillguard.signals import signals_schema

TS = pa.timestamp("us", tz="UTC")

EXCHANGES = pa.schema(
    [
        pa.field("exchange_id", pa.string(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        ("api_key_id", pa.string()),
        ("conversation_id", pa.string()),
        ("client_ip", pa.string()),
        ("client_asn", pa.int64()),
        ("client_country", pa.string()),
        ("user_agent", pa.string()),
        ("tls_fingerprint", pa.string()),
        ("request_format", pa.string()),  # chat | responses | anthropic
        ("model", pa.string()),
        ("system_text", pa.string()),  # system/developer instructions, joined
        ("prompt_text", pa.string()),  # text of the last user turn
        ("n_messages", pa.int32()),
        ("n_user_turns", pa.int32()),
        ("n_tools", pa.int32()),
        ("n_images", pa.int32()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("n_choices", pa.int32()),
        ("stream", pa.bool_()),
        ("status", pa.int32()),
        ("finish_reason", pa.string()),
        ("response_text", pa.string()),
        ("reasoning_text", pa.string()),
        ("n_tool_calls", pa.int32()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("request_json", pa.string()),  # normalized request, unknown keys kept
        ("extra_json", pa.string()),  # unknown top-level / response keys
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ]
)

ACCOUNTS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("created_at", TS),
        ("signup_path", pa.string()),
        ("tier", pa.string()),
        ("payment_fingerprint", pa.string()),
        ("email_domain", pa.string()),
        ("country", pa.string()),
        ("organization_id", pa.string()),
        ("extra_json", pa.string()),
    ]
)

EVENTS = pa.schema(
    [
        pa.field("timestamp", TS, nullable=False),
        pa.field("type", pa.string(), nullable=False),
        ("model", pa.string()),
        ("extra_json", pa.string()),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        ("kind", pa.string()),  # exchanges | accounts | events
        ("excerpt", pa.string()),
    ]
)

ACCOUNT_FEATURES = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("n_exchanges", pa.int64()),
        ("n_active_days", pa.int64()),
        ("first_seen", TS),
        ("last_seen", TS),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("output_input_ratio", pa.float64()),
        ("mean_prompt_chars", pa.float64()),
        ("iat_cv", pa.float64()),
        ("hour_entropy", pa.float64()),
        ("weekly_entropy", pa.float64()),  # day-of-week spread, 0..1
        ("duty_cycle", pa.float64()),  # active hours / hours between first and last request
        ("multi_turn_share", pa.float64()),
        ("tool_share", pa.float64()),
        ("distinct_templates", pa.int64()),
        ("template_reuse", pa.float64()),  # 1 - distinct/n
        ("top_template_share", pa.float64()),
        ("exchanges_per_active_day", pa.float64()),
        ("elicitation_rate", pa.float64()),  # share of requests that elicit reasoning
        ("top_capability_share", pa.float64()),  # concentration on one capability area
        ("new_model_share_24h", pa.float64()),  # new-model share in the 24 h after a release
        ("account_age_days", pa.float64()),  # account age at its first exchange
        ("harvest_format_share", pa.float64()),  # share of requests with dataset-building cues
        ("distinct_temperatures", pa.int64()),  # temperature sweeps
        ("safeguard_rate", pa.float64()),  # share of requests that are jailbreak attempts
        ("signup_path", pa.string()),  # how the account was created (accounts table)
        ("payment_shared_accounts", pa.int64()),  # other accounts, outside its organization, on its payment card
        ("topic_bits", pa.list_(pa.float64())),  # share of prompts with each topic-SimHash bit set
    ]
)

ACCOUNT_SCORES = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("score", pa.float64()),
        ("flagged", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
    ]
)

ACCOUNT_CLUSTERS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("cluster_id", pa.string()),  # null: not linked, but matches partner indicators
        ("link_evidence", pa.list_(pa.string())),
        ("partner_indicators", pa.list_(pa.string())),  # "kind:value" of partner indicators it used
    ]
)

POLICY = pa.schema(
    [
        pa.field("subject_type", pa.string(), nullable=False),  # account | cluster
        pa.field("subject_id", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),  # allow|monitor|throttle|challenge|block
        ("reason", pa.string()),
        ("expires_at", TS),
    ]
)

CAMPAIGNS = pa.schema(
    [
        pa.field("campaign_id", pa.string(), nullable=False),
        ("record_json", pa.string()),  # the campaigns.json record
    ]
)

ACCOUNT_LINKS = pa.schema(
    [
        pa.field("src", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        ("weight", pa.float64()),  # summed family weights (see link.graph)
        ("kinds", pa.list_(pa.string())),  # evidence kinds shared (link.evidence.KINDS)
    ]
)

PARTNER_INDICATORS = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),  # ip | asn | user_agent | tls | payment (sha256)
        pa.field("value", pa.string(), nullable=False),
        ("source", pa.string()),  # bundle file and indicator id
        ("imported_at", TS),
    ]
)

CLEARED_ACCOUNTS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("cleared_at", TS),
        ("source", pa.string()),  # the file (or console user) the decision came from
        ("note", pa.string()),
    ]
)
"""Accounts an analyst cleared as benign: they join the reference and are never set aside."""

REFERENCE_VALUES = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        ("accounts", pa.int64()),  # vetted reference accounts that held the value
    ]
)
"""Link evidence values of the vetted reference: the base rate of the scan's rarity weights."""

_TABLES_BEFORE_SIGNALS = {
    "exchanges": EXCHANGES,
    "accounts": ACCOUNTS,
    "events": EVENTS,
    "quarantine": QUARANTINE,
}
_TABLES_AFTER_SIGNALS = {
    "account_features": ACCOUNT_FEATURES,
    "window_features": ACCOUNT_FEATURES,  # account_id is "<account>@<window index>"
    "account_scores": ACCOUNT_SCORES,
    "account_clusters": ACCOUNT_CLUSTERS,
    "account_links": ACCOUNT_LINKS,
    "partner_indicators": PARTNER_INDICATORS,
    "cleared_accounts": CLEARED_ACCOUNTS,
    "reference_values": REFERENCE_VALUES,
    "policy": POLICY,
    "campaigns": CAMPAIGNS,
}

if TYPE_CHECKING:  # built on first use by ``__getattr__``
    SIGNALS: pa.Schema
    TABLES: dict[str, pa.Schema]


def __getattr__(name: str) -> Any:
    """``SIGNALS`` (the enrich stage's output) and ``TABLES``, built from the registered enrichers on first use.

    Lazy, so that modules needing other tables do not load every enricher, and
    an enricher plugin may import this module.
    """
    if name == "SIGNALS":
        return signals_schema()
    if name == "TABLES":
        return tables()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tables() -> dict[str, pa.Schema]:
    """Every table of the store, by name (``TABLES``)."""
    return _tables(signals_schema())


@cache
def _tables(signals: pa.Schema) -> dict[str, pa.Schema]:
    return {**_TABLES_BEFORE_SIGNALS, "signals": signals, **_TABLES_AFTER_SIGNALS}


CAPABILITIES = (
    "reasoning", "coding", "tool-use", "vision", "safety", "creative", "chat",
)
"""Capability areas an exchange is assigned to (see ``signals.capability``)."""

ACTIONS = ("allow", "monitor", "throttle", "challenge", "block")


def empty(name: str) -> pa.Table:
    """An empty table with the schema of ``name``."""
    return tables()[name].empty_table()
