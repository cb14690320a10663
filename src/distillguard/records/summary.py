"""The scan summary (``summary.json``): what was scanned, how, and the counts the report shows.

Fields added after the first release default to empty, so older output directories still render.

>>> s = ScanSummary.model_validate({"version": "0.1.0", "traffic_dir": "t", "engine": "duckdb", "exchanges": 10,
...     "quarantined": 0, "first_seen": None, "last_seen": None, "threshold": None, "target_fpr": 0.001,
...     "scorer": "knn-novelty"})
>>> s.threshold_units, s.reference_set_aside
('score', None)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from distillguard.records.base import Instant, Record


class SetAsideSummary(Record):
    """Reference accounts left out before use (``scoring.SetAside``)."""

    accounts: int
    by_reason: dict[str, int] = Field(
        description="accounts per kind of reason: campaign member, harvest evidence, flagged")
    examples: dict[str, str] = Field(description="up to 20 accounts, each with why")


class IngestCounts(Record):
    """What the ingest did (``ingest.IngestReport``); counts it adds later pass through."""

    model_config = ConfigDict(frozen=True, extra="allow")
    files: int
    exchanges_read: int
    exchanges_added: int
    duplicates: int
    quarantined: int = Field(description="rows of every kind")
    accounts: int
    events: int


class ScanSummary(Record):
    """One scan: its input, engine, detector settings and counts."""

    version: str = Field(description="distillguard's version")
    traffic_dir: str
    engine: str
    exchanges: int
    quarantined: int
    first_seen: Instant | None
    last_seen: Instant | None
    threshold: float | None = Field(description="the flag threshold (none: the reference was too small)")
    threshold_units: Literal["score", "threshold multiples"] = "score"
    member_threshold: float | None = Field(None, description="the campaign member bar, in score units")
    member_fpr: float | None = None
    target_fpr: float
    scorer: str
    reference: str | None = Field(None, description="the reference directory, or 'the scanned population'")
    reference_accounts_kept: int | None = None
    reference_set_aside: SetAsideSummary | None = None
    cleared_accounts: int = 0
    ingest: IngestCounts | None = None
    settings: dict[str, dict[str, Any]] | None = Field(
        None, description="the detect and link settings the scan ran with (config.Settings sections), so the "
                          "report states the rules as applied")
