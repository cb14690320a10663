"""Boundary records: the published JSON Schemas are current, and real scan outputs validate against them and
read back through their models byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from pydantic import TypeAdapter

from distillguard.pipeline import scan
from distillguard.records import Campaign, PolicyRecord, ScanSummary, dump_json
from distillguard.records.schemas import FILES, schema_text
from distillguard.report import render_report
from distillguard.store import Store

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def published(name: str) -> Draft202012Validator:
    """A validator of the committed schema: what a reader outside this code base gets."""
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def test_committed_schemas_are_the_generated_ones() -> None:
    assert {p.name for p in SCHEMAS.glob("*.schema.json")} == {f"{n}.schema.json" for n in FILES}
    for name in FILES:
        assert (SCHEMAS / f"{name}.schema.json").read_text() == schema_text(name), \
            f"docs/schemas/{name}.schema.json is stale: run python scripts/write_schemas.py"
        Draft202012Validator.check_schema(json.loads(schema_text(name)))


@pytest.fixture(scope="module")
def scan_out(tmp_path_factory: pytest.TempPathFactory, small_traffic: Path) -> Path:
    out = tmp_path_factory.mktemp("records") / "out"
    with Store.open(out.parent / "s.duckdb") as store:
        result = scan(small_traffic, out, store=store)
    assert result.campaigns  # the checks below see a campaign and its policy record
    return out


@pytest.mark.parametrize(("name", "file", "shape"), [
    ("campaigns", "campaigns.json", list[Campaign]),
    ("policy", "policy.json", list[PolicyRecord]),
    ("summary", "summary.json", ScanSummary),
])
def test_scan_outputs_validate_and_read_back_byte_for_byte(scan_out: Path, name: str, file: str, shape: Any) -> None:
    raw = (scan_out / file).read_bytes()
    published(name).validate(json.loads(raw))
    records = TypeAdapter(shape).validate_json(raw)
    assert dump_json(records) == raw  # every field modelled, in the order written, numbers as written


def test_the_published_schemas_reject_what_readers_cannot_use() -> None:
    with pytest.raises(ValidationError):  # no subject: the gateway could not apply it
        published("policy").validate([{"action": "block"}])
    with pytest.raises(ValidationError):
        published("policy").validate([{"subject": "account:a", "action": "tarpit"}])
    with pytest.raises(ValidationError):  # the scan output contract's fields are required
        published("campaigns").validate([{"campaign_id": "campaign-0001", "account_ids": ["a"]}])


def test_older_outputs_still_render(scan_out: Path, tmp_path: Path) -> None:
    """A campaign with only the contract's fields and a summary from before the reference counts still render."""
    scan_out = Path(shutil.copytree(scan_out, tmp_path / "old"))
    campaigns = json.loads((scan_out / "campaigns.json").read_text())
    contract = ["campaign_id", "account_ids", "exchange_count", "score", "capabilities", "first_seen", "last_seen",
                "evidence"]
    (scan_out / "campaigns.json").write_text(json.dumps([{k: c[k] for k in contract} for c in campaigns]))
    summary = json.loads((scan_out / "summary.json").read_text())
    for newer in ("threshold_units", "member_threshold", "member_fpr", "reference", "reference_accounts_kept",
                  "reference_set_aside", "cleared_accounts", "ingest"):
        summary.pop(newer)
    (scan_out / "summary.json").write_text(json.dumps(summary))
    html = render_report(scan_out).read_text()
    assert campaigns[0]["campaign_id"] in html and "Reference:" not in html
