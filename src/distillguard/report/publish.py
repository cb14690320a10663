"""Write the scan output contract of the exchange-log spec into ``OUT_DIR``.

- ``accounts.parquet``: account_id, score, flagged, cluster_id, reasons
- ``campaigns.json``: campaign records
- ``policy.parquet``: the decide stage's table
- ``policy.json``: the same decisions in the gateway's format (``policy_records``)
- ``summary.json``: counts the report shows
- ``report.html``: rendered from the files above
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import InputError
from distillguard.report.html import render_report

ACCOUNTS_OUT = pa.schema([
    ("account_id", pa.string()), ("score", pa.float64()), ("flagged", pa.bool_()),
    ("cluster_id", pa.string()), ("reasons", pa.list_(pa.string())),
    ("n_exchanges", pa.int64()),  # beyond the contract's minimum: lets bench weight by traffic
])


def write_outputs(
    out_dir: Path, accounts: pa.Table, campaigns: list[dict[str, Any]], policy: pa.Table,
    summary: dict[str, Any],
) -> Path:
    """Write every output file; return the path of ``report.html``."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    pq.write_table(accounts.select(ACCOUNTS_OUT.names).cast(ACCOUNTS_OUT), out_dir / "accounts.parquet")
    pq.write_table(policy, out_dir / "policy.parquet")
    # Replaced atomically: a gateway hot-reloading it never reads half a file.
    tmp = out_dir / "policy.json.tmp"
    tmp.write_bytes(orjson.dumps(policy_records(policy, campaigns), option=orjson.OPT_INDENT_2))
    os.replace(tmp, out_dir / "policy.json")
    (out_dir / "campaigns.json").write_bytes(orjson.dumps(campaigns, option=orjson.OPT_INDENT_2))
    (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return render_report(out_dir)


def policy_records(policy: pa.Table, campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policy as the gateway loads it: ``subject`` ``account:ID`` or ``cluster:ID``, action,
    reason, ``expires_at`` (ISO 8601), and for clusters their ``members`` at scan time.

    A cluster's action applies to every member; the gateway also applies it to
    accounts a later scan links into the cluster.

    >>> from datetime import datetime, UTC
    >>> t = pa.table({"subject_type": ["cluster"], "subject_id": ["cluster-0001"], "action": ["challenge"],
    ...               "reason": ["r"], "expires_at": [datetime(2026, 2, 15, tzinfo=UTC)]})
    >>> policy_records(t, [{"cluster_id": "cluster-0001", "account_ids": ["a", "b"]}])[0]["members"]
    ['a', 'b']
    """
    members = {c["cluster_id"]: c["account_ids"] for c in campaigns}
    out = []
    for r in policy.to_pylist():
        record: dict[str, Any] = {"subject": f"{r['subject_type']}:{r['subject_id']}", "action": r["action"],
                                  "reason": r["reason"],
                                  "expires_at": r["expires_at"].isoformat() if r["expires_at"] else None}
        if r["subject_type"] == "cluster":
            record["members"] = members.get(r["subject_id"], [])
        out.append(record)
    return out
