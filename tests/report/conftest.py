"""One small scan whose report the report tests read (a tenth of the demo scenario, no reference)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.pipeline import scan
from distillguard.store import Store


@pytest.fixture(scope="session")
def report_out(tmp_path_factory: pytest.TempPathFactory, small_traffic: Path) -> Path:
    """A scan output directory (accounts.parquet, campaigns.json, policy.json, summary.json, report.html)."""
    out = tmp_path_factory.mktemp("report") / "out"
    with Store.open(out.parent / "s.duckdb") as store:
        result = scan(small_traffic, out, store=store)
    assert result.campaigns, "the report tests need a campaign"
    return out
