"""Write the scan output contract of the exchange-log spec into ``OUT_DIR``.

- ``accounts.parquet``: account_id, score, flagged, cluster_id, reasons (the contract), then
  n_exchanges, flagged_alone (flagged on its own score, not only as a campaign member),
  flag_reason (why it is or is not flagged, one sentence: ``decide.members.flag_reasons``)
  and link_evidence (the kinds of evidence that link it to its cluster)
- ``campaigns.json``: campaign records (``records.Campaign``)
- ``policy.parquet``: the decide stage's table
- ``policy.json``: the same decisions in the gateway's format (``records.PolicyRecord``)
- ``summary.json``: counts the report shows (``records.ScanSummary``)
- ``report.html``: rendered from the files above

Their JSON Schemas are in ``docs/schemas``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.decide import policy_records
from distillguard.decide.members import flag_reasons
from distillguard.errors import InputError
from distillguard.records import Campaign, ScanSummary, dump_json
from distillguard.report.html import render_report

ACCOUNTS_OUT = pa.schema([
    ("account_id", pa.string()), ("score", pa.float64()), ("flagged", pa.bool_()),
    ("cluster_id", pa.string()), ("reasons", pa.list_(pa.string())),
    ("n_exchanges", pa.int64()),  # beyond the contract's minimum: lets bench weight by traffic
    ("flagged_alone", pa.bool_()), ("flag_reason", pa.string()),  # what an analyst asks first: why (not)?
    ("link_evidence", pa.list_(pa.string())),
])


def write_outputs(
    out_dir: Path, *, accounts: pa.Table, campaigns: list[Campaign], policy: pa.Table, summary: ScanSummary,
) -> Path:
    """Write every output file; return the path of ``report.html``."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    why = flag_reasons(accounts, campaigns, threshold=summary.threshold, member_threshold=summary.member_threshold)
    accounts = accounts.append_column("flag_reason", pa.array(why, pa.string()))
    pq.write_table(accounts.select(ACCOUNTS_OUT.names).cast(ACCOUNTS_OUT), out_dir / "accounts.parquet")
    pq.write_table(policy, out_dir / "policy.parquet")
    # Replaced atomically: a gateway hot-reloading it never reads half a file.
    tmp = out_dir / "policy.json.tmp"
    tmp.write_bytes(dump_json(policy_records(policy, campaigns)))
    os.replace(tmp, out_dir / "policy.json")
    (out_dir / "campaigns.json").write_bytes(dump_json(campaigns))
    (out_dir / "summary.json").write_bytes(dump_json(summary))
    return render_report(out_dir)
