"""Campaigns as a STIX 2.1 bundle another provider can load: ``distillguard export-stix``.

Per campaign: a ``campaign``; an ``infrastructure`` (the proxy network its
accounts came through); one ``indicator`` per shared IP address, ASN, user
agent, TLS fingerprint and payment fingerprint (payment values are SHA-256
hashed, in a custom observable, never sent in the clear), each with a
``sighting`` carrying the count and first/last seen; and ``attack-pattern``
objects with their MITRE ATLAS ids, linked by ``relationship`` objects. Every
object is marked with a TLP level and created by the provider's ``identity``.

Object ids are derived from stable names (in UUIDv4 form), so exporting the same scan twice gives
the same ids and a partner's database deduplicates.

Built with the ``stix2`` library (objects validate their properties on
construction); ``tests/share`` runs the official ``stix2-validator`` on the output.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stix2

from distillguard.errors import InputError
from distillguard.records import Campaign, read_json_list

NAMESPACE = uuid.UUID("6f1c2f1e-6a52-4d0e-9a54-3f1d6f0a7c11")  # distillguard's UUIDv5 namespace

ATLAS = {
    "AML.T0024.002": ("Extract AI Model", "Exfiltration via AI inference API: harvesting outputs to train a copy."),
    "AML.T0008.005": ("AI Service Proxies", "Proxy networks that spread API traffic over many accounts and exits."),
    "AML.T0021": ("Establish Accounts", "Many accounts created or bought to share the load and evade limits."),
    "AML.T0065": ("LLM Prompt Crafting", "Prompt templates crafted to elicit reasoning traces and capabilities."),
    "AML.T0040": ("AI Model Inference API Access", "Access to the model through its inference API."),
}
TLP = {"white": stix2.TLP_WHITE, "green": stix2.TLP_GREEN, "amber": stix2.TLP_AMBER, "red": stix2.TLP_RED}

PAYMENT_TYPE = "x-distillguard-payment"
TLS_TYPE = "x-distillguard-tls-fingerprint"


PAYMENT_EXTENSION_ID = "extension-definition--3b8e5a6c-0f55-4c1e-9f0a-7d2b5f3f8e21"


@stix2.CustomObservable(PAYMENT_TYPE, [("sha256", stix2.properties.StringProperty(required=True))],
                        id_contrib_props=["sha256"], extension_name=PAYMENT_EXTENSION_ID)
class PaymentFingerprint:
    """A payment fingerprint, SHA-256 hashed: matchable by partners, useless to anyone else."""


def _id(kind: str, *parts: str) -> str:
    """A UUIDv4-form id derived from a stable name (STIX asks v4 for domain objects; same name, same id)."""
    derived = uuid.uuid5(NAMESPACE, "|".join(parts))
    return f"{kind}--{uuid.UUID(bytes=derived.bytes, version=4)}"


def hash_payment(fingerprint: str) -> str:
    """How payment fingerprints travel: SHA-256 hex of the provider's fingerprint string."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern(kind: str, value: str) -> str:
    """The STIX pattern matching one shared value.

    >>> pattern("ip", "203.0.113.9")
    "[ipv4-addr:value = '203.0.113.9']"
    >>> pattern("asn", "65001")
    '[autonomous-system:number = 65001]'
    """
    if kind == "ip":
        return f"[{'ipv6-addr' if ':' in value else 'ipv4-addr'}:value = {_quote(value)}]"
    if kind == "asn":
        return f"[autonomous-system:number = {int(value)}]"
    if kind == "user_agent":
        return f"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = {_quote(value)}]"
    if kind == "tls":
        return f"[{TLS_TYPE}:value = {_quote(value)}]"
    if kind == "payment":
        return f"[{PAYMENT_TYPE}:sha256 = {_quote(hash_payment(value))}]"
    raise ValueError(f"no STIX pattern for evidence kind {kind!r}")


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)


def build_bundle(
    campaigns: Sequence[Campaign], *, provider: str = "distillguard user", tlp: str = "amber",
    created: datetime | None = None,
) -> stix2.Bundle:
    """A STIX 2.1 bundle of ``campaigns`` (records of ``campaigns.json``)."""
    if tlp not in TLP:
        raise InputError(f"unknown TLP level {tlp!r}; choose one of {', '.join(TLP)}")
    marking = TLP[tlp]
    created = created or datetime.now(UTC).replace(microsecond=0)
    common: dict[str, Any] = {"created": created, "modified": created, "object_marking_refs": [marking]}
    identity = stix2.Identity(id=_id("identity", provider), name=provider, identity_class="organization",
                              **common)
    common["created_by_ref"] = identity.id
    patterns = [stix2.AttackPattern(
        id=_id("attack-pattern", atlas_id), name=name, description=text,
        # No URL: the validator wants a hash with every URL, and the id is what tools key on.
        external_references=[{"source_name": "mitre-atlas", "external_id": atlas_id}], **common)
        for atlas_id, (name, text) in ATLAS.items()]
    extension = stix2.ExtensionDefinition(
        id=PAYMENT_EXTENSION_ID, created_by_ref=identity.id, created=created, modified=created,
        name="distillguard hashed payment fingerprint",
        description=f"{PAYMENT_TYPE}: SHA-256 (hex) of a payment fingerprint, so partners can match "
                    "cards without exchanging them.",
        schema="https://github.com/distillguard/distillguard/blob/main/docs/stix.md", version="1.0.0",
        extension_types=["new-sco"], object_marking_refs=[marking])
    objects: list[Any] = [marking, identity, extension, *patterns]
    for c in campaigns:
        objects += _campaign_objects(c, patterns, identity, common)
    return stix2.Bundle(objects=objects, allow_custom=True, id=_id("bundle", provider, created.isoformat(),
                                                *(c.campaign_id for c in campaigns)))


def _campaign_objects(c: Campaign, patterns: list[Any], identity: Any, common: dict[str, Any]) -> list[Any]:
    key = f"{c.campaign_id}|{c.first_seen.isoformat()}"  # as campaigns.json writes it: ids stay stable
    first, last = c.first_seen.astimezone(UTC), c.last_seen.astimezone(UTC)
    top = ", ".join(f"{k} {v:.0%}" for k, v in list(c.capabilities.items())[:3])
    campaign = stix2.Campaign(
        id=_id("campaign", key), name=f"Distillation campaign {c.campaign_id}",
        description=(f"{len(c.account_ids)} linked accounts, {c.exchange_count:,} exchanges ({top}). "
                     + " ".join(c.evidence)),
        first_seen=first, last_seen=last, objective="Harvest model outputs to train a copy (distillation)",
        confidence=max(0, min(100, round(100 * c.score))), **common)
    infra = stix2.Infrastructure(
        id=_id("infrastructure", key), name=f"Proxy network of {c.campaign_id}",
        infrastructure_types=["anonymization"], first_seen=first, last_seen=last,
        description="Addresses, autonomous systems and clients shared by the campaign's accounts.", **common)
    out: list[Any] = [campaign, infra, _rel("uses", campaign, infra, common)]
    out += [_rel("uses", campaign, p, common) for p in patterns]
    for item in c.infrastructure:
        indicator = stix2.Indicator(
            id=_id("indicator", key, item.kind, item.value),
            name=f"{item.kind} shared by {item.accounts} accounts of {c.campaign_id}",
            indicator_types=["malicious-activity"], pattern=pattern(item.kind, item.value),
            description=f"Used by {item.accounts} accounts of {c.campaign_id}"
                        + (f" in {item.exchanges:,} exchanges." if item.exchanges else "."),
            pattern_type="stix", valid_from=_when(item.first_seen), **common)
        count = item.exchanges or item.accounts
        sighting = stix2.Sighting(
            id=_id("sighting", key, item.kind, item.value), sighting_of_ref=indicator.id,
            count=min(count, 999_999_999), where_sighted_refs=[identity.id],
            description=f"Seen in {c.campaign_id} traffic ({item.accounts} accounts).",
            first_seen=_when(item.first_seen), last_seen=_when(item.last_seen), **common)
        out += [indicator, sighting, _rel("indicates", indicator, campaign, common),
                _rel("indicates", indicator, infra, common)]
        if item.kind == "payment":
            observable = PaymentFingerprint(sha256=hash_payment(item.value))  # type: ignore[call-arg]
            out += [observable, _rel("related-to", indicator, observable, common, allow_custom=True)]
    return out


def _rel(kind: str, src: Any, dst: Any, common: dict[str, Any], allow_custom: bool = False) -> stix2.Relationship:
    return stix2.Relationship(id=_id("relationship", kind, src.id, dst.id), relationship_type=kind,
                              source_ref=src.id, target_ref=dst.id, allow_custom=allow_custom, **common)


def export_stix(out_dir: Path, dest: Path, *, provider: str = "distillguard user", tlp: str = "amber") -> int:
    """Write the bundle of ``out_dir/campaigns.json`` to ``dest``; return the number of objects."""
    path = Path(out_dir) / "campaigns.json"
    if not path.is_file():
        raise InputError(f"{out_dir} is not a scan output directory: missing campaigns.json")
    bundle = build_bundle(read_json_list(path, Campaign), provider=provider, tlp=tlp)
    Path(dest).write_text(bundle.serialize(pretty=True), encoding="utf-8")
    return len(bundle.objects)
