"""JSON Schemas of the records, one per file that crosses a boundary (published in ``docs/schemas``).

``scripts/write_schemas.py`` writes them; a test checks the committed ones are current and that real
outputs validate against them.

>>> sorted(FILES)
['campaigns', 'exchange-log-record', 'lab-results', 'policy', 'summary']
>>> json_schema("policy")["type"], json_schema("policy")["items"]["$ref"]
('array', '#/$defs/PolicyRecord')
>>> schema_text("summary").splitlines()[1]
'  "$schema": "https://json-schema.org/draft/2020-12/schema",'
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from distillguard.records.campaign import Campaign
from distillguard.records.exchange import ExchangeLogRecord
from distillguard.records.lab import LabResults
from distillguard.records.policy import PolicyRecord
from distillguard.records.summary import ScanSummary

FILES: dict[str, tuple[TypeAdapter[Any], str]] = {
    "campaigns": (TypeAdapter(list[Campaign]), "campaigns.json of a scan: its campaigns, highest score first"),
    "policy": (TypeAdapter(list[PolicyRecord]), "policy.json of a scan: the decisions the gateway loads"),
    "summary": (TypeAdapter(ScanSummary), "summary.json of a scan"),
    "exchange-log-record": (TypeAdapter(ExchangeLogRecord), "one line of the gateway's exchange log"),
    "lab-results": (TypeAdapter(LabResults), "results.json of distillguard lab run"),
}
"""Schema name (``docs/schemas/NAME.schema.json``) → the adapter of what the file holds, and a title."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(name: str) -> dict[str, Any]:
    """The published JSON Schema of ``name`` (what a reader may rely on: the validation side)."""
    adapter, title = FILES[name]
    schema = adapter.json_schema(mode="validation")
    schema.pop("title", None)  # the model's name: the file's title says more
    return {"$schema": DRAFT, "$id": f"{name}.schema.json", "title": title, **schema}


def schema_text(name: str) -> str:
    """The text of ``docs/schemas/NAME.schema.json``: the schema, indented, one newline at the end."""
    return json.dumps(json_schema(name), indent=2, ensure_ascii=False) + "\n"
