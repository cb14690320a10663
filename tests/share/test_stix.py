"""STIX 2.1 export (checked by the official validator) and import as link evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_string

from distillguard.errors import InputError
from distillguard.pipeline import scan
from distillguard.records import Campaign
from distillguard.share import build_bundle, export_stix, import_stix, indicators_from_bundle
from distillguard.share.stix_export import hash_payment
from distillguard.store import Store

CAMPAIGN = Campaign.model_validate({
    "campaign_id": "campaign-0001", "account_ids": ["acct-1", "acct-2", "acct-3"], "exchange_count": 1200,
    "score": 0.91, "capabilities": {"coding": 0.6, "tool-use": 0.4},
    "first_seen": "2026-02-02T00:00:00+00:00", "last_seen": "2026-02-09T00:00:00+00:00",
    "evidence": ["3 linked accounts sent 1,200 exchanges."],
    "infrastructure": [
        {"kind": "ip", "value": "203.0.113.9", "accounts": 3, "exchanges": 700,
         "first_seen": "2026-02-02T00:00:00Z", "last_seen": "2026-02-08T00:00:00Z"},
        {"kind": "ip", "value": "2001:db8:1:2::7", "accounts": 2, "exchanges": 20,
         "first_seen": "2026-02-03T00:00:00Z", "last_seen": "2026-02-04T00:00:00Z"},
        {"kind": "asn", "value": "65001", "accounts": 3, "exchanges": 900,
         "first_seen": "2026-02-02T00:00:00Z", "last_seen": "2026-02-08T00:00:00Z"},
        {"kind": "user_agent", "value": "harvest-bot/1.0 'quoted'", "accounts": 3, "exchanges": 1200,
         "first_seen": "2026-02-02T00:00:00Z", "last_seen": "2026-02-08T00:00:00Z"},
        {"kind": "tls", "value": "t13d1516h2_8daaf6152771_e5627efa2ab1", "accounts": 3, "exchanges": 1200,
         "first_seen": "2026-02-02T00:00:00Z", "last_seen": "2026-02-08T00:00:00Z"},
        {"kind": "payment", "value": "pm-secret-card", "accounts": 2, "exchanges": None,
         "first_seen": "2026-01-20T00:00:00Z", "last_seen": "2026-01-21T00:00:00Z"},
    ],
})
CREATED = datetime(2026, 2, 10, tzinfo=UTC)


def _bundle_text() -> str:
    return str(build_bundle([CAMPAIGN], provider="Example AI", tlp="amber", created=CREATED).serialize(pretty=True))


def test_the_official_validator_accepts_the_bundle() -> None:
    text = _bundle_text()
    assert validate_string(text, ValidationOptions(version="2.1")).is_valid
    strict = validate_string(text, ValidationOptions(version="2.1", strict=True))
    # The one strict complaint: SCO ids are UUIDv5, as the STIX 2.1 spec requires for observables.
    assert all("{103}" in str(e) and "x-distillguard-payment--" in str(e) for e in strict.errors)


def test_the_bundle_carries_campaign_infrastructure_indicators_sightings_and_atlas_ids() -> None:
    text = _bundle_text()
    objects = json.loads(text)["objects"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        by_type.setdefault(o["type"], []).append(o)
    (campaign,) = by_type["campaign"]
    assert campaign["first_seen"].startswith("2026-02-02") and campaign["confidence"] == 91
    assert by_type["infrastructure"][0]["infrastructure_types"] == ["anonymization"]
    atlas = {r["external_id"] for p in by_type["attack-pattern"] for r in p["external_references"]}
    assert atlas == {"AML.T0024.002", "AML.T0008.005", "AML.T0021", "AML.T0065", "AML.T0040"}
    patterns = sorted(i["pattern"] for i in by_type["indicator"])
    assert "[ipv4-addr:value = '203.0.113.9']" in patterns
    assert "[ipv6-addr:value = '2001:db8:1:2::7']" in patterns
    assert "[autonomous-system:number = 65001]" in patterns
    assert f"[x-distillguard-payment:sha256 = '{hash_payment('pm-secret-card')}']" in patterns
    assert "pm-secret-card" not in text  # payment fingerprints never travel in the clear
    counts = {s["count"] for s in by_type["sighting"]}
    assert {700, 20, 900, 1200} <= counts
    tlp = next(o for o in objects if o["type"] == "marking-definition" and o.get("name", "").startswith("TLP"))
    assert all(tlp["id"] in o.get("object_marking_refs", []) for o in objects
               if o["type"] not in ("marking-definition", "x-distillguard-payment"))
    # Same scan, same ids: partners deduplicate repeated exports.
    assert text == _bundle_text()


def test_import_reads_every_indicator_kind_back(tmp_path: Path) -> None:
    rows, indicators, skipped = indicators_from_bundle(json.loads(_bundle_text()), "partner.json")
    assert indicators == 6 and skipped == 0
    got = {(r["kind"], r["value"]) for r in rows}
    assert got == {("ip", "203.0.113.9"), ("ip", "2001:db8:1:2::7"), ("asn", "65001"),
                   ("user_agent", "harvest-bot/1.0 'quoted'"), ("tls", "t13d1516h2_8daaf6152771_e5627efa2ab1"),
                   ("payment", hash_payment("pm-secret-card"))}


def test_bad_bundles_get_clear_errors(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        (tmp_path / "x.json").write_text('{"type": "indicator"}')
        with pytest.raises(InputError, match="not a STIX bundle"):
            import_stix(tmp_path / "x.json", store)
        bad = {"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "indicator", "id": "indicator--9", "pattern": "[ipv4-addr:value = ", "pattern_type": "stix"}]}
        (tmp_path / "y.json").write_text(json.dumps(bad))
        with pytest.raises(InputError, match="indicator--9: invalid STIX pattern"):
            import_stix(tmp_path / "y.json", store)
        with pytest.raises(InputError, match="bundle not found"):
            import_stix(tmp_path / "missing.json", store)


def test_a_partners_indicators_link_and_flag_accounts_in_the_next_scan(small_traffic: Path, tmp_path: Path) -> None:
    """Provider A exports its campaigns; provider B imports them and its next scan names the accounts."""
    with Store.open(tmp_path / "a.duckdb") as store:
        first = scan(small_traffic, tmp_path / "a-out", store=store)
    assert first.campaigns
    export_stix(tmp_path / "a-out", tmp_path / "bundle.json", provider="Provider A")
    with Store.open(tmp_path / "b.duckdb") as store:
        report = import_stix(tmp_path / "bundle.json", store)
        assert report.values > 0
        assert import_stix(tmp_path / "bundle.json", store).values == report.values  # re-import replaces
        assert store.count("partner_indicators") == report.values
        scan(small_traffic, tmp_path / "b-out", store=store)
        links = store.query("SELECT kinds FROM account_links").column("kinds").to_pylist()
    assert any("partner" in k for k in links)
    import pyarrow.parquet as pq

    accounts = pq.read_table(tmp_path / "b-out" / "accounts.parquet").to_pylist()
    named = [a for a in accounts if any("indicators shared by partners" in r for r in a["reasons"] or [])]
    members = {a for c in first.campaigns for a in c["account_ids"]}
    assert named and {a["account_id"] for a in named} <= members | {a["account_id"] for a in accounts}
    assert len(named) >= len(members) // 2
