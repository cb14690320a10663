"""The store compresses its text columns, and a store in the older format still opens (#21.10)."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from distillguard.schema import EXCHANGES
from distillguard.store import Store


def _exchanges(n: int) -> pa.Table:
    """Prompts as real traffic has them: a few hundred distinct ones repeated, now and then a long one (a pasted
    file). A long string made DuckDB's older format store whole segments uncompressed."""
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    prompts = [" ".join(rng.choice(words) for _ in range(120)) for _ in range(300)]
    rows = []
    for i in range(n):
        prompt = prompts[i % len(prompts)] + (" pasted" * 1000 if i % 500 == 0 else "")
        rows.append({"exchange_id": f"e{i}", "timestamp": datetime(2026, 2, 1, tzinfo=UTC), "account_id": f"a{i % 50}",
                     "prompt_text": prompt, "request_json": f'{{"messages":[{{"role":"user","content":"{prompt}"}}]}}'})
    return pa.Table.from_pylist(rows, schema=EXCHANGES)


def _compression(store: Store, column: str) -> set[str]:
    rows = store.con.execute("SELECT DISTINCT compression FROM pragma_storage_info('exchanges') "
                             "WHERE column_name = ? AND segment_type = 'VARCHAR'", [column]).fetchall()
    return {r[0] for r in rows}


def test_text_columns_are_compressed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.duckdb") as store:
        store.append("exchanges", _exchanges(20_000))
        store.con.execute("CHECKPOINT")
        assert "Uncompressed" not in _compression(store, "prompt_text") | _compression(store, "request_json")
    assert (tmp_path / "s.duckdb").stat().st_size < 5_000_000  # 33 MB of text: 1 MB here, 54 MB in the older format


def test_a_store_in_the_older_format_opens_and_takes_writes(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path), config={"storage_compatibility_version": "v1.0.0"}).close()
    with Store.open(path) as store:
        store.append("exchanges", _exchanges(10))
    with Store.open(path, read_only=True) as store:
        assert store.count("exchanges") == 10
