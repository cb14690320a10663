"""Records that cross a boundary: one pydantic model per file or log line another program reads.

- ``Campaign`` (``campaigns.json``), ``PolicyRecord`` (``policy.json``, loaded by the gateway),
  ``ScanSummary`` (``summary.json``): written by ``scan`` (``report.publish``);
- ``ExchangeLogRecord``: one line of the gateway's exchange log (the exchange-log spec's row);
- ``LabResults``: ``results.json`` of ``distillguard lab run``.

Inside the code the models travel; ``dict`` appears only at the JSON edge (``Record.as_json``,
``dump_json``). Their JSON Schemas are in ``docs/schemas`` (``records.schemas``).

>>> from distillguard.records import PolicyRecord
>>> PolicyRecord(subject="account:a", action="throttle", reason="r", expires_at=None).as_json()
{'subject': 'account:a', 'action': 'throttle', 'reason': 'r', 'expires_at': None}
"""

from distillguard.records.base import Instant, Record, dump_json, read_json, read_json_list
from distillguard.records.campaign import Campaign, CampaignGraph, HarvestScore, ReleasePivot, SharedValue
from distillguard.records.exchange import ExchangeLogRecord
from distillguard.records.lab import (
           Baselines,
           BaselineSizes,
           CanaryTest,
           ForensicTest,
           HarvestSummary,
           LabResults,
           LabRun,
)
from distillguard.records.policy import TRANSFORMS, Action, LogitsProcessor, PolicyRecord
from distillguard.records.summary import IngestCounts, ScanSummary, SetAsideSummary

__all__ = ["TRANSFORMS", "Action", "BaselineSizes", "Baselines", "Campaign", "CampaignGraph", "CanaryTest",
           "ExchangeLogRecord", "ForensicTest", "HarvestScore", "HarvestSummary", "IngestCounts", "Instant",
           "LabResults", "LabRun", "LogitsProcessor", "PolicyRecord", "Record", "ReleasePivot", "ScanSummary",
           "SetAsideSummary", "SharedValue", "dump_json", "read_json", "read_json_list"]
