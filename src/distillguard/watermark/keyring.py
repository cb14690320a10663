"""Versioned watermark keys: a JSON file the model server loads, so requests and logs name a version, not a secret.

A keyring file holds ``{"keys": [{"scheme": ..., "version": ..., <the scheme's key and parameters>}, ...]}``.
Requests ask for ``{"name": "watermark", "version": "2026-11-a"}``; the gateway's log
records that spec (so each exchange says which key version marked it) and never the key.

>>> ring = Keyring.from_records([{"scheme": "greenlist", "version": "k1", "key": 99}])
>>> ring.scheme("k1").name
'greenlist'
>>> new_key("tournament", "k2")["scheme"]
'tournament'
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError
from distillguard.watermark.base import Scheme, load_scheme


@dataclass(frozen=True)
class Keyring:
    records: dict[str, dict[str, Any]]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Keyring:
        out: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(records):
            if not isinstance(r, dict) or not r.get("scheme") or not r.get("version"):
                raise ConfigError(f"keyring record {i}: needs 'scheme' and 'version'")
            if r["version"] in out:
                raise ConfigError(f"keyring: version {r['version']!r} appears twice")
            load_scheme(r["scheme"], r)  # a bad key fails when the keyring loads, not on a request
            out[str(r["version"])] = dict(r)
        return cls(out)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the watermark keyring {path}: {exc}") from exc
        return cls.from_records(data["keys"] if isinstance(data, dict) and "keys" in data else
                                data if isinstance(data, list) else [data])

    def scheme(self, version: str) -> Scheme:
        if version not in self.records:
            raise ConfigError(f"no watermark key version {version!r}; this keyring has "
                              f"{', '.join(sorted(self.records)) or 'none'}")
        record = self.records[version]
        return load_scheme(record["scheme"], record)


def new_key(scheme: str, version: str, **params: Any) -> dict[str, Any]:
    """A fresh random key record for ``scheme`` (63-bit integer from ``secrets``)."""
    record = {"scheme": scheme, "version": version, "key": secrets.randbits(63), **params}
    load_scheme(scheme, record)
    return record
