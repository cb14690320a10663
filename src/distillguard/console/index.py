"""A small per-scan index the console's queue and campaign pages read instead of the store.

Built once per scan output (keyed by ``scan_key``) with one pass over the store's ``signals`` and a lookup of
a few exchanges' text: the campaign members' hourly traffic by capability, sample exchanges (excerpts only,
or no text at all, as the retention settings say), each flagged account's first and last exchange and main
capability, and the flagged set (what is new since the last scan compares against it). The pages then read
a few Parquet files of kilobytes, whatever the store's size, and the store is free for the next scan.

Layout: ``STATE/index/<scan_key>/{timeline,samples,accounts,flagged}.parquet`` and ``STATE/index/scans.json``
(the scans the console has seen, oldest first).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.console.effects import write_atomic
from distillguard.errors import InputError, StoreError
from distillguard.records import Campaign
from distillguard.store import Store

log = logging.getLogger(__name__)
SAMPLES_PER_CAMPAIGN = 12
SAMPLES_PER_MEMBER = 2
FILES = ("timeline", "samples", "accounts", "flagged")


@dataclass(frozen=True)
class Retention:
    """How much exchange text the console shows and keeps: ``excerpt_chars`` of each prompt and answer, or,
    with ``show_text`` off, none (metadata only). Text the log already redacted (null) stays absent."""

    excerpt_chars: int = 280
    show_text: bool = True

    def sql(self, column: str) -> str:
        """The SQL expression for ``column``'s excerpt (or NULL)."""
        if not self.show_text or self.excerpt_chars <= 0:
            return "CAST(NULL AS VARCHAR)"
        return f"left({column}, {int(self.excerpt_chars)})"


def scan_key(out_dir: Path) -> str:
    """A short id of one scan output: its summary and when its accounts were written.

    Two scans of the same traffic write the same summary, so the accounts file's modification time joins it.
    """
    summary, accounts = Path(out_dir) / "summary.json", Path(out_dir) / "accounts.parquet"
    try:
        digest = hashlib.sha256(summary.read_bytes() + str(accounts.stat().st_mtime_ns).encode()).hexdigest()
    except FileNotFoundError as exc:
        raise InputError(f"{out_dir} is not a scan output directory: missing {Path(exc.filename).name}") from exc
    return digest[:12]


def members_table(campaigns: list[Campaign]) -> pa.Table:
    """(campaign_id, account_id) for every campaign member."""
    pairs = [(c.campaign_id, a) for c in campaigns for a in c.account_ids]
    return pa.table({"campaign_id": pa.array([p[0] for p in pairs], pa.string()),
                     "account_id": pa.array([p[1] for p in pairs], pa.string())})


def build_index(store_path: Path, out_dir: Path, *, campaigns: list[Campaign], dest: Path,
                retention: Retention) -> None:
    """Write the index of the scan in ``out_dir`` (whose exchanges are in the store at ``store_path``) to ``dest``."""
    flagged = duckdb.sql(f"SELECT account_id FROM read_parquet('{_q(out_dir / 'accounts.parquet')}') "
                         "WHERE flagged ORDER BY account_id").to_arrow_table()
    members = members_table(campaigns)
    try:
        store = Store.open(store_path, read_only=True)
    except StoreError as exc:
        raise InputError(f"cannot read the store {store_path} (is a scan writing it?): {exc}") from exc
    with store:
        con, signals = store.con, store.signals_sql()  # a Spark scan's are in its warehouse
        con.register("_members", members)
        con.register("_flagged", flagged)
        # One pass over the signals for everything per account and per campaign.
        con.execute("""
            CREATE TEMP TABLE _targets AS
            SELECT account_id FROM _flagged UNION SELECT account_id FROM _members""")
        con.execute(f"""
            CREATE TEMP TABLE _by_hour AS
            SELECT s.account_id, date_trunc('hour', s.timestamp) AS hour,
                   coalesce(s.capability, 'unknown') AS capability, count(*) AS n,
                   min(s.timestamp) AS first_seen, max(s.timestamp) AS last_seen
            FROM {signals} s JOIN _targets t USING (account_id) GROUP BY ALL""")
        timeline = con.execute("""
            SELECT m.campaign_id, h.hour, h.capability, sum(h.n)::BIGINT AS n
            FROM _by_hour h JOIN _members m USING (account_id) GROUP BY ALL ORDER BY 1, 2, 3""").to_arrow_table()
        accounts = con.execute("""
            WITH caps AS (SELECT account_id, capability, sum(n) AS n FROM _by_hour GROUP BY ALL)
            SELECT a.account_id, a.first_seen, a.last_seen, c.capability
            FROM (SELECT account_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen
                  FROM _by_hour GROUP BY 1) a
            JOIN (SELECT account_id, first(capability ORDER BY n DESC, capability) AS capability FROM caps GROUP BY 1) c
              USING (account_id)
            ORDER BY a.account_id""").to_arrow_table()
        # Samples: a few exchanges of each member, in an order fixed by the exchange ids, then the text of those
        # few only (the text columns are the store's bulk).
        picked = con.execute(f"""
            WITH ranked AS (
                SELECT m.campaign_id, s.account_id, s.exchange_id, s.timestamp, s.capability,
                       row_number() OVER (PARTITION BY m.campaign_id, s.account_id ORDER BY hash(s.exchange_id)) AS r
                FROM {signals} s JOIN _members m USING (account_id)),
            kept AS (SELECT *, row_number() OVER (PARTITION BY campaign_id ORDER BY r, hash(exchange_id)) AS k
                     FROM ranked WHERE r <= {SAMPLES_PER_MEMBER})
            SELECT campaign_id, account_id, exchange_id, timestamp, capability FROM kept
            WHERE k <= {SAMPLES_PER_CAMPAIGN}""").to_arrow_table()
        con.register("_picked", picked)
        samples = con.execute(f"""
            SELECT p.campaign_id, p.account_id, p.exchange_id, p.timestamp, p.capability, e.model, e.status,
                   {retention.sql('e.prompt_text')} AS prompt, {retention.sql('e.response_text')} AS answer
            FROM _picked p JOIN exchanges e USING (exchange_id)
            ORDER BY p.campaign_id, p.timestamp, p.exchange_id""").to_arrow_table()
    dest.mkdir(parents=True, exist_ok=True)
    for name, table in zip(FILES, (timeline, samples, accounts, flagged), strict=True):
        pq.write_table(table, dest / f"{name}.parquet")


class Index:
    """The index folder of the console's state: which scans it has seen, and each one's files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._registry = self.root / "scans.json"

    def scans(self) -> list[dict[str, str]]:
        """The scans seen, oldest first: ``{"key", "out_dir", "seen_at"}``."""
        if not self._registry.is_file():
            return []
        return list(json.loads(self._registry.read_text(encoding="utf-8")))

    def folder(self, key: str) -> Path:
        return self.root / key

    def ensure(self, key: str, *, store_path: Path, out_dir: Path, campaigns: list[Campaign],
               retention: Retention) -> Path:
        """The index of scan ``key``, built first if the console has not seen it."""
        folder = self.folder(key)
        if not all((folder / f"{n}.parquet").is_file() for n in FILES):
            started = datetime.now(UTC)
            build_index(store_path, out_dir, campaigns=campaigns, dest=folder, retention=retention)
            log.info("indexed scan %s in %.1f s", key, (datetime.now(UTC) - started).total_seconds())
        scans = self.scans()
        if not any(s["key"] == key for s in scans):
            scans.append({"key": key, "out_dir": str(out_dir), "seen_at": datetime.now(UTC).isoformat()})
            write_atomic(self._registry, json.dumps(scans, indent=2).encode())
        return folder

    def previous(self, key: str) -> Path | None:
        """The index of the scan seen before ``key`` (none for the first)."""
        keys = [s["key"] for s in self.scans()]
        if key not in keys or keys.index(key) == 0:
            return None
        folder = self.folder(keys[keys.index(key) - 1])
        return folder if (folder / "flagged.parquet").is_file() else None


def _q(path: Path) -> str:
    """``path`` as a single-quoted SQL string's body."""
    return str(path).replace("'", "''")
