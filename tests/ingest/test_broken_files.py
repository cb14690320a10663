"""Damaged files and far timestamps never stop a scan: what is lost is quarantined, the rest is read."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from distillguard.ingest import ingest_traffic_dir, tables
from distillguard.pipeline import scan
from distillguard.signals.timing import TimingEnricher
from distillguard.store import Store


def _row(i: int, **changes: Any) -> dict[str, Any]:
    return {"exchange_id": f"b-{i}", "timestamp": "2026-02-01T12:00:00Z", "account_id": f"acct-{i % 5}",
            "request": {"messages": [{"role": "user", "content": f"question {i} " * 5}]}, **changes}


def _ingest(traffic: Path, db: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with Store.open(db) as store:
        report = ingest_traffic_dir(traffic, store)
        kept = store.query("SELECT source_file, source_line FROM exchanges ORDER BY ALL").to_pylist()
        quarantined = store.query("SELECT file, line, reason FROM quarantine ORDER BY ALL").to_pylist()
    assert report.quarantined == len(quarantined)
    return kept, quarantined


def test_parquet_corrupt_inside_keeps_the_rows_before_and_quarantines_the_rest(tmp_path: Path) -> None:
    shards = tmp_path / "t" / "exchanges"
    shards.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_row(i) for i in range(400)]), shards / "a.parquet", row_group_size=50)
    data = bytearray((shards / "a.parquet").read_bytes())
    rng = random.Random(0)
    for k in range(len(data) // 2, len(data) // 2 + 300):  # the footer stays whole: only pages are damaged
        data[k] = rng.randrange(256)
    (shards / "a.parquet").write_bytes(bytes(data))
    (shards / "b.jsonl").write_text("".join(json.dumps(_row(1000 + i)) + "\n" for i in range(7)))
    kept, quarantined = _ingest(tmp_path / "t", tmp_path / "s.duckdb")
    (entry,) = quarantined  # the whole file (line 0) when DuckDB fails at once, else from the damaged row on
    assert entry["file"].endswith("a.parquet") and "400" in entry["reason"]
    from_a = [r["source_line"] for r in kept if r["source_file"].endswith("a.parquet")]
    assert from_a == list(range(1, entry["line"]))  # every row before the damage, none after
    assert sum(r["source_file"].endswith("b.jsonl") for r in kept) == 7


@pytest.mark.parametrize("ext", ["gz", "zst"])
def test_truncated_compressed_jsonl_keeps_what_decompresses(tmp_path: Path, ext: str) -> None:
    shards = tmp_path / "t" / "exchanges"
    shards.mkdir(parents=True)
    lines = "".join(json.dumps(_row(i)) + "\n" for i in range(2000)).encode()
    packed = gzip.compress(lines) if ext == "gz" else zstandard.ZstdCompressor().compress(lines)
    (shards / f"a.jsonl.{ext}").write_bytes(packed[: len(packed) // 2])
    (shards / "b.parquet").write_bytes(b"")  # and a zero-byte shard
    kept, quarantined = _ingest(tmp_path / "t", tmp_path / "s.duckdb")
    assert [(Path(q["file"]).name, q["line"]) for q in quarantined][-1] == ("b.parquet", 0)
    cut = [q for q in quarantined if q["file"].endswith(ext)]
    assert cut, "the cut is reported"
    assert all(r["source_line"] < cut[-1]["line"] for r in kept)
    assert len(kept) + len(cut) >= cut[-1]["line"] - 1 > 100  # every line before the cut is read


def test_far_timestamps_do_not_crash_the_timing_signals() -> None:
    times = [dt.datetime(y, 1, 1, tzinfo=dt.UTC) for y in (1, 1677, 2026, 2262, 2300, 9999)]
    batch = pa.record_batch({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC"))})
    out = TimingEnricher().enrich(batch)
    assert out.column("t_s").to_pylist()[2] == times[2].timestamp()
    assert out.column("day_index").to_pylist()[-1] == (times[-1] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).days


def test_a_scan_with_far_timestamps_negative_tokens_and_broken_shards_completes(
    small_traffic: Path, tmp_path: Path,
) -> None:
    traffic = tmp_path / "t"
    shutil.copytree(small_traffic, traffic)
    shards = traffic / "exchanges"
    far = [_row(i, timestamp=t) for i, t in enumerate(
        ["9999-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2262-04-12T00:00:00Z"])]
    negative = [_row(10, response={"status": 200, "usage": {"input_tokens": -1_000_000, "output_tokens": 3}})]
    (shards / "zz-far.jsonl").write_text("".join(json.dumps(r) + "\n" for r in far + negative))
    pq.write_table(pa.Table.from_pylist([_row(20, timestamp="9999-01-01T00:00:00Z"), _row(21)]),
                   shards / "zz-far.parquet")
    (shards / "zz-empty.parquet").write_bytes(b"")
    (shards / "zz-cut.parquet").write_bytes((shards / "zz-far.parquet").read_bytes()[:-20])
    with Store.open(tmp_path / "s.duckdb") as store:
        result = scan(traffic, tmp_path / "out", store=store)
        quarantine = store.query("SELECT file, line, reason FROM quarantine").to_pylist()
        assert store.count("exchanges") > 1000
    where = sorted((Path(q["file"]).name, q["line"]) for q in quarantine)
    assert where == [("zz-cut.parquet", 0), ("zz-empty.parquet", 0), ("zz-far.jsonl", 1), ("zz-far.jsonl", 2),
                     ("zz-far.jsonl", 3), ("zz-far.jsonl", 4), ("zz-far.jsonl", 5), ("zz-far.parquet", 1)]
    assert result.ingest.quarantined == 8 and (tmp_path / "out" / "accounts.parquet").exists()


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_a_dangling_shard_link_is_one_quarantine_entry(tmp_path: Path, ext: str) -> None:
    shards = tmp_path / "t" / "exchanges"
    shards.mkdir(parents=True)
    (shards / f"gone.{ext}").symlink_to(tmp_path / "nowhere")
    (shards / "b.jsonl").write_text(json.dumps(_row(1)) + "\n")
    kept, quarantined = _ingest(tmp_path / "t", tmp_path / "s.duckdb")
    assert len(kept) == 1
    assert [(Path(q["file"]).name, q["line"]) for q in quarantined] == [(f"gone.{ext}", 0)]


def test_a_bug_met_on_one_row_quarantines_that_row_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tables.exchange_row

    def buggy(rec: Any, *args: Any) -> dict[str, Any]:
        if rec.get("exchange_id") == "b-2":
            raise KeyError("a bug")
        return real(rec, *args)

    monkeypatch.setattr(tables, "exchange_row", buggy)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "exchanges.jsonl").write_text("".join(json.dumps(_row(i)) + "\n" for i in range(5)))
    kept, quarantined = _ingest(tmp_path / "t", tmp_path / "s.duckdb")
    assert len(kept) == 4 and [q["line"] for q in quarantined] == [3]
    assert "internal error reading the row (KeyError" in quarantined[0]["reason"]
