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

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError
from distillguard.watermark.base import Scheme, load_scheme
from distillguard.watermark.keyfile import check_records, read_records


@dataclass(frozen=True)
class Keyring:
    records: dict[str, dict[str, Any]]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Keyring:
        check_records(records)
        out: dict[str, dict[str, Any]] = {}
        for r in records:
            load_scheme(r["scheme"], r)  # a bad key fails when the keyring loads, not on a request
            out[str(r["version"])] = dict(r)
        return cls(out)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        return cls.from_records(read_records(path))

    def scheme(self, version: str) -> Scheme:
        if version not in self.records:
            raise ConfigError(f"no watermark key version {version!r}; this keyring has "
                              f"{', '.join(sorted(self.records)) or 'none'}")
        record = self.records[version]
        return load_scheme(record["scheme"], record)


def new_key(scheme: str, version: str, **params: Any) -> dict[str, Any]:
    """A fresh random key record for ``scheme`` (63-bit integer from ``secrets``), checked by the scheme
    (``keyfile.fresh_key`` makes one without importing the schemes)."""
    record = {"scheme": scheme, "version": version, "key": secrets.randbits(63), **params}
    load_scheme(scheme, record)
    return record
