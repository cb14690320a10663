"""Keyring files without the schemes: read their records and add a fresh key.

``watermark keygen`` writes one random integer; importing the schemes (torch,
transformers) to do so took seconds, so this module imports neither. A key of a
built-in scheme with its default parameters is valid by construction; any other
(a plugin scheme, extra parameters) is checked by the scheme itself
(``keyring.new_key``). ``Keyring`` validates every record when a keyring is used.

>>> record = fresh_key("greenlist", "k1")
>>> sorted(record), 0 <= record["key"] < 2**63
(['key', 'scheme', 'version'], True)
>>> check_records([record, dict(record)])
Traceback (most recent call last):
...
distillguard.errors.ConfigError: keyring: version 'k1' appears twice
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError

BUILT_IN = ("greenlist", "tournament")
"""Schemes of this package whose default parameters need nothing but a key (a test holds this to ``schemes()``)."""


def fresh_key(scheme: str, version: str) -> dict[str, Any]:
    """A random key record (63-bit integer from ``secrets``) of a built-in scheme with its defaults."""
    if scheme not in BUILT_IN:
        raise ConfigError(f"{scheme!r} is not a built-in watermark scheme ({', '.join(BUILT_IN)})")
    return {"scheme": scheme, "version": version, "key": secrets.randbits(63)}


def parse_records(data: Any) -> list[dict[str, Any]]:
    """The records of a keyring's JSON: ``{"keys": [...]}``, a list of records, or one record."""
    records = data["keys"] if isinstance(data, dict) and "keys" in data else data if isinstance(data, list) else [data]
    if not isinstance(records, list):
        raise ConfigError("a watermark keyring holds {\"keys\": [...]}")
    return records


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of the keyring file ``path`` (``ConfigError`` when unreadable)."""
    try:
        return parse_records(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the watermark keyring {path}: {exc}") from exc


def check_records(records: list[Any]) -> None:
    """Each record names a scheme and a version, and no version appears twice."""
    seen: set[str] = set()
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not r.get("scheme") or not r.get("version"):
            raise ConfigError(f"keyring record {i}: needs 'scheme' and 'version'")
        if str(r["version"]) in seen:
            raise ConfigError(f"keyring: version {r['version']!r} appears twice")
        seen.add(str(r["version"]))


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    Path(path).write_text(json.dumps({"keys": records}, indent=2) + "\n")
