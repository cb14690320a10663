"""A partner's STIX indicators as link and score evidence: ``distillguard import-stix``.

Indicators whose patterns compare an IP address, ASN, user agent, TLS
fingerprint or hashed payment fingerprint for equality are stored in the
``partner_indicators`` table; the next scan's link stage turns every account
that used one of them into a holder of ``partner`` evidence (``link.evidence``),
so accounts sharing a partner's indicator are linked, and the evidence names it.
Patterns are parsed with ``stix2-patterns``; other comparisons are counted and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from stix2patterns.v21.pattern import Pattern

from distillguard.errors import InputError
from distillguard.schema import PARTNER_INDICATORS
from distillguard.share.stix_export import PAYMENT_TYPE, TLS_TYPE
from distillguard.store import Store

# (object type, property path) → evidence kind
_PATHS = {
    ("ipv4-addr", ("value",)): "ip",
    ("ipv6-addr", ("value",)): "ip",
    ("autonomous-system", ("number",)): "asn",
    ("network-traffic", ("extensions", "http-request-ext", "request_header", "User-Agent")): "user_agent",
    (TLS_TYPE, ("value",)): "tls",
    (PAYMENT_TYPE, ("sha256",)): "payment",
}


@dataclass(frozen=True)
class ImportReport:
    indicators: int  # indicator objects read
    values: int  # (kind, value) rows stored
    skipped: int  # comparisons distillguard cannot use


def indicators_from_bundle(bundle: dict[str, Any], source: str) -> tuple[list[dict[str, Any]], int, int]:
    """(rows for ``partner_indicators``, indicators read, comparisons skipped)."""
    if bundle.get("type") != "bundle":
        raise InputError(f"{source}: not a STIX bundle (type {bundle.get('type')!r})")
    rows, seen, skipped = [], 0, 0
    now = datetime.now(UTC)
    for obj in bundle.get("objects") or []:
        if obj.get("type") != "indicator" or obj.get("pattern_type", "stix") != "stix":
            continue
        seen += 1
        try:
            comparisons = Pattern(obj["pattern"]).inspect().comparisons
        except Exception as exc:  # the pattern library raises its own parse errors
            raise InputError(f"{source}: indicator {obj.get('id')}: invalid STIX pattern: {exc}") from exc
        for obj_type, items in comparisons.items():
            for path, op, literal in items:
                kind = _PATHS.get((obj_type, tuple(path)))
                if kind is None or op != "=":
                    skipped += 1
                    continue
                rows.append({"kind": kind, "value": _unquote(literal),
                             "source": f"{source}#{obj.get('id')}", "imported_at": now})
    return rows, seen, skipped


def import_stix(path: Path, store: Store) -> ImportReport:
    """Add the usable indicators of the bundle at ``path`` to ``store`` (replacing that file's earlier import)."""
    path = Path(path)
    try:
        bundle = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise InputError(f"bundle not found: {path}") from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from exc
    rows, seen, skipped = indicators_from_bundle(bundle, path.name)
    with store.transaction():
        store.con.execute("DELETE FROM partner_indicators WHERE starts_with(source, ?)", [f"{path.name}#"])
        if rows:
            store.append("partner_indicators", pa.Table.from_pylist(rows, schema=PARTNER_INDICATORS))
    return ImportReport(seen, len(rows), skipped)


def _unquote(literal: str) -> str:
    """A pattern literal's value: ``'a\\'b'`` → ``a'b``; numbers as written.

    >>> _unquote("'it\\'s'"), _unquote("65001")
    ("it's", '65001')
    """
    if len(literal) >= 2 and literal[0] == literal[-1] == "'":
        return re.sub(r"\\(.)", r"\1", literal[1:-1])
    return literal
