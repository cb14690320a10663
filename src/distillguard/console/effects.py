"""What the decisions change outside the console: the gateway's policy file, the cleared-accounts file the
next scan reads (``scan --benign``), and analyst labels (the exchange log's ``labels`` rows).

The policy written is the scan's own (``OUT/policy.parquet`` and ``campaigns.json``) with the decisions
applied: a confirmed campaign replaces its cluster's record by the analyst's enforcement over the members
the analyst saw; a confirmed account gets its own record; a dismissed subject loses its records and its
accounts leave every cluster record's members (the gateway takes the strictest record that names an
account, so clearing means not naming it). Files are replaced atomically: the gateway's hot reload sees
the old file or the new one.

>>> from datetime import datetime, UTC
>>> from distillguard.console.decisions import Decision
>>> d = Decision.new("alice", "confirm", subject_kind="campaign", subject_id="campaign-0001", scan="s",
...                  enforcement="block", expires_days=7, cluster_id="cluster-0001", members=["a", "b"], note="harvest")
>>> d = Decision(**{**d.__dict__, "id": 3})
>>> [r.as_json()["subject"] for r in effective_policy([], {d.subject: d}, scan="s")]
['cluster:campaign-0001.d3']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from distillguard.console.decisions import Decision
from distillguard.records import PolicyRecord, dump_json

_ENFORCE: dict[str, tuple[str, list[str] | None]] = {
    "block": ("block", None),
    "challenge": ("challenge", None),
    "throttle": ("throttle", None),
    "withhold_reasoning": ("monitor", ["withhold_reasoning"]),  # served, reasoning stripped, marked in the log
    "mark": ("monitor", None),
}


def cleared(current: dict[tuple[str, str], Decision]) -> dict[str, Decision]:
    """Accounts an analyst cleared (directly, or as members of a dismissed campaign) and not since confirmed."""
    out: dict[str, Decision] = {}
    for d in sorted(current.values(), key=lambda d: d.id):
        if d.kind == "dismiss":
            for account in (d.members if d.subject_kind == "campaign" else (d.subject_id,)):
                out[account] = d
    for (kind, ident), d in current.items():  # an account's own confirmation beats a campaign's dismissal
        if kind == "account" and d.kind != "dismiss":
            out.pop(ident, None)
    return out


def effective_policy(base: Iterable[PolicyRecord], current: dict[tuple[str, str], Decision], *,
                     scan: str) -> list[PolicyRecord]:
    """The scan's policy records with the standing decisions applied (see the module docstring)."""
    gone = cleared(current)
    decided_clusters = {d.cluster_id for d in current.values()
                        if d.subject_kind == "campaign" and d.scan == scan and d.kind in ("confirm", "dismiss")}
    decided_accounts = {ident for (kind, ident), d in current.items() if kind == "account" and d.kind == "confirm"}
    out: list[PolicyRecord] = []
    for r in base:
        kind, _, ident = r.subject.partition(":")
        if kind == "cluster":
            members = [m for m in r.members or [] if m not in gone]
            if ident in decided_clusters or not members:
                continue
            out.append(r.model_copy(update={"members": members}))
        elif ident not in gone and ident not in decided_accounts:
            out.append(r)
    for d in sorted(current.values(), key=lambda d: d.id):
        if d.kind != "confirm" or d.enforcement is None:
            continue
        action, transforms = _ENFORCE[d.enforcement]
        reason = f"{d.subject_id} confirmed by {d.user}" + (f": {d.note}" if d.note else "")
        extra: dict[str, Any] = {"transforms": transforms} if transforms else {}
        if d.subject_kind == "campaign":
            members = [m for m in d.members if m not in gone]
            if members:  # a subject of its own, so that a later scan's cluster of the same id is not caught
                out.append(PolicyRecord(subject=f"cluster:{d.subject_id}.d{d.id}", action=action, reason=reason,
                                        expires_at=d.expires_at, members=members, **extra))
        else:
            out.append(PolicyRecord(subject=f"account:{d.subject_id}", action=action, reason=reason,
                                    expires_at=d.expires_at, **extra))
    return out


def labels(current: dict[tuple[str, str], Decision]) -> list[dict[str, Any]]:
    """One ``labels`` row (exchange-log spec) per decided account: confirmed → attack, cleared → benign.

    An account's own decision beats its campaign's; escalations are not labels.
    """
    rows: dict[str, dict[str, Any]] = {}
    ordered = sorted(current.values(), key=lambda d: (d.subject_kind == "account", d.id))
    for d in ordered:
        if d.kind not in ("confirm", "dismiss"):
            continue
        accounts = d.members if d.subject_kind == "campaign" else (d.subject_id,)
        for a in accounts:
            attack = d.kind == "confirm"
            # bench groups attacks by campaign and style: an account confirmed on its own is a group of its own
            rows[a] = {"account_id": a, "is_attack": attack,
                       "campaign_id": (d.subject_id if d.subject_kind == "campaign" else "confirmed-alone")
                       if attack else None,
                       "actor": None, "style": "analyst-confirmed" if attack else None,
                       "population": None if attack else "cleared",
                       "decided_by": d.user, "decided_at": d.at.isoformat(), "decision": d.id}
    return [rows[a] for a in sorted(rows)]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename (readers see the old file or the new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_all(*, policy_path: Path, cleared_path: Path, labels_path: Path, base: list[PolicyRecord],
              current: dict[tuple[str, str], Decision], scan: str) -> None:
    """Write the policy, the cleared-accounts file and the labels for the standing decisions."""
    write_atomic(policy_path, dump_json(effective_policy(base, current, scan=scan)))
    lines = ["# accounts cleared in distillguard console; pass to `distillguard scan --benign` (one id a line)"]
    lines += [f"{a} {d.note.splitlines()[0] if d.note else ''} (decision {d.id} by {d.user})".rstrip()
              for a, d in sorted(cleared(current).items())]
    write_atomic(cleared_path, ("\n".join(lines) + "\n").encode())
    write_atomic(labels_path, b"".join(orjson.dumps(r) + b"\n" for r in labels(current)))
