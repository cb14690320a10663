"""Traffic split into hive-style day partitions, as a provider's landing zone holds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from distillguard.sim import generate, load_scenario


@pytest.fixture(scope="session")
def daily_traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tenth of the demo scenario, its exchanges in ``exchanges/date=YYYY-MM-DD/part-0.parquet`` (8 days)."""
    work = tmp_path_factory.mktemp("daily")
    generate(load_scenario("demo").scaled(0.1), work / "traffic", seed=3, fmt="parquet")
    out = work / "parts"
    split_by_day(work / "traffic", out)
    return out


def split_by_day(src: Path, dst: Path) -> list[str]:
    """Copy the traffic directory ``src`` to ``dst`` with its exchanges in one partition folder per UTC day."""
    dst.mkdir(parents=True)
    for name in ("accounts.jsonl", "events.jsonl", "labels.jsonl"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = f"read_parquet('{src}/exchanges/*.parquet')"
    day = "strftime(CAST(timestamp AS TIMESTAMPTZ), '%Y-%m-%d')"
    days = [r[0] for r in con.execute(f"SELECT DISTINCT {day} AS d FROM {rows} ORDER BY d").fetchall()]
    for d in days:
        part = dst / "exchanges" / f"date={d}"
        part.mkdir(parents=True)
        con.execute(f"COPY (SELECT * FROM {rows} WHERE {day} = '{d}') TO '{part}/part-0.parquet' (FORMAT parquet)")
    return days


def landing(parts: Path, dst: Path, days: int) -> Path:
    """``dst`` holding the metadata files of ``parts`` and its first ``days`` day partitions (more are added by
    calling again with a larger ``days``)."""
    (dst / "exchanges").mkdir(parents=True, exist_ok=True)
    for name in ("accounts.jsonl", "events.jsonl", "labels.jsonl"):
        if (parts / name).exists() and not (dst / name).exists():
            shutil.copy(parts / name, dst / name)
    for part in sorted((parts / "exchanges").iterdir())[:days]:
        if not (dst / "exchanges" / part.name).exists():
            shutil.copytree(part, dst / "exchanges" / part.name)
    return dst


def outputs(out: Path) -> dict[str, Any]:
    """What a scan decided: accounts.parquet, campaigns.json, policy.json (expiry left out: it counts from the wall
    clock) and summary.json without what describes the run rather than the traffic (the ingest report, paths)."""
    summary = json.loads((out / "summary.json").read_text())
    for key in ("ingest", "traffic_dir", "reference", "version"):
        summary.pop(key, None)
    return {
        "accounts": pq.read_table(out / "accounts.parquet"),
        "campaigns": json.loads((out / "campaigns.json").read_text()),
        "policy": [{k: v for k, v in r.items() if k != "expires_at"}
                   for r in json.loads((out / "policy.json").read_text())],
        "summary": summary,
    }
