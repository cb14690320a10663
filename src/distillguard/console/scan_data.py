"""One scan output as the console reads it: the queue's and campaign pages' queries over ``accounts.parquet``,
``campaigns.json`` and the console's index, in an in-memory DuckDB (each page asks for its rows, sorted,
filtered and paginated there, so a page costs the same for 36,000 accounts as for 50).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.console.decisions import Decision
from distillguard.console.index import Index, Retention, members_table, scan_key
from distillguard.console.pictures import PictureCache
from distillguard.decide.policy import policy_records
from distillguard.errors import InputError
from distillguard.records import Campaign, PolicyRecord, ScanSummary, read_json, read_json_list

STATUSES = ("open", "confirmed", "dismissed", "escalated")
AGES = {"1": 1, "7": 7, "30": 30}  # first seen within this many days of the scan's last exchange


@dataclass(frozen=True)
class Filters:
    """The queue's filters; empty strings mean "any". Values are checked (``InputError`` names the field)."""

    capability: str = ""
    age: str = ""
    status: str = ""

    def __post_init__(self) -> None:
        if self.age and self.age not in AGES:
            raise InputError(f"age: one of {', '.join(AGES)} days, or empty")
        if self.status and self.status not in STATUSES:
            raise InputError(f"status: one of {', '.join(STATUSES)}, or empty")
        if len(self.capability) > 40:
            raise InputError("capability: too long")


class ScanData:
    """The scan in ``out_dir`` with its index (built on first sight from the store at ``store_path``)."""

    def __init__(self, out_dir: Path, store_path: Path, index: Index, retention: Retention) -> None:
        self.out_dir = Path(out_dir)
        missing = [n for n in ("accounts.parquet", "campaigns.json", "summary.json", "policy.parquet")
                   if not (self.out_dir / n).is_file()]
        if missing:
            raise InputError(f"{out_dir} is not a scan output directory: missing {', '.join(missing)}")
        self.key = scan_key(self.out_dir)
        self.summary = read_json(self.out_dir / "summary.json", ScanSummary)
        self.campaigns = read_json_list(self.out_dir / "campaigns.json", Campaign)
        self.by_id = {c.campaign_id: c for c in self.campaigns}
        self.campaign_of = {a: c.campaign_id for c in self.campaigns for a in c.account_ids}
        self.base_policy: list[PolicyRecord] = policy_records(pq.read_table(self.out_dir / "policy.parquet"),
                                                              self.campaigns)
        folder = index.ensure(self.key, store_path=store_path, out_dir=self.out_dir, campaigns=self.campaigns,
                              retention=retention)
        previous = index.previous(self.key)
        self.first_scan = previous is None
        self._lock = threading.Lock()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TABLE acc AS SELECT * FROM read_parquet('{_q(self.out_dir / 'accounts.parquet')}')")
        for name in ("timeline", "samples", "accounts", "flagged"):
            con.execute(f"CREATE TABLE ix_{name} AS SELECT * FROM read_parquet('{_q(folder / f'{name}.parquet')}')")
        if previous is not None:
            con.execute(f"CREATE TABLE prev AS SELECT * FROM read_parquet('{_q(previous / 'flagged.parquet')}')")
        else:
            con.execute("CREATE TABLE prev (account_id VARCHAR)")
        con.register("_m", members_table(self.campaigns))
        con.execute("CREATE TABLE members AS SELECT * FROM _m")
        con.unregister("_m")
        con.register("_c", pa.Table.from_pylist([_campaign_row(c) for c in self.campaigns], schema=_CAMPAIGN_ROW))
        con.execute("CREATE TABLE camp AS SELECT * FROM _c")
        con.unregister("_c")
        con.execute("""CREATE TABLE camp_new AS SELECT c.campaign_id,
                       NOT EXISTS (SELECT 1 FROM members m JOIN prev p USING (account_id)
                                   WHERE m.campaign_id = c.campaign_id) AS new FROM camp c""")
        self._con = con
        self.pictures = PictureCache(self)
        self.capabilities = sorted({r[0] for r in con.execute(
            "SELECT DISTINCT top_capability FROM camp WHERE top_capability IS NOT NULL "
            "UNION SELECT DISTINCT capability FROM ix_accounts WHERE capability IS NOT NULL").fetchall()})

    # -- the queue -------------------------------------------------------------------------------

    def _cursor(self, statuses: dict[tuple[str, str], Decision]) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        rows = [{"kind": k, "id": i, "status": d.status} for (k, i), d in statuses.items()
                if k == "account" or d.scan == self.key]  # a campaign id means this scan's campaign only
        cur.register("_status", pa.Table.from_pylist(rows, schema=pa.schema(
            [("kind", pa.string()), ("id", pa.string()), ("status", pa.string())])))
        return cur

    def _since(self, f: Filters) -> datetime | None:
        if not f.age or self.summary.last_seen is None:
            return None
        return self.summary.last_seen - timedelta(days=AGES[f.age])

    def _filters(self, f: Filters, where: list[str], *, capability: str,
                 first_seen: str) -> tuple[list[str], list[Any]]:
        """``where`` plus the SQL conditions of the filters (capability, age, status), and their arguments;
        ``capability`` is the condition on one capability parameter, ``first_seen`` the column to age."""
        args: list[Any] = []
        if f.capability:
            where, args = [*where, capability], [*args, f.capability]
        since = self._since(f)
        if since is not None:
            where, args = [*where, f"{first_seen} >= ?"], [*args, since]
        if f.status:
            where, args = [*where, "coalesce(s.status, 'open') = ?"], [*args, f.status]
        return where, args

    def queue_campaigns(self, f: Filters, statuses: dict[tuple[str, str], Decision]) -> list[dict[str, Any]]:
        """Campaigns, highest score then largest first, with their status and whether they are new."""
        where, args = self._filters(f, ["TRUE"], capability="list_contains(c.capability_list, ?)",
                                    first_seen="c.first_seen")
        sql = f"""SELECT c.*, coalesce(s.status, 'open') AS status, n.new FROM camp c
                  LEFT JOIN _status s ON s.kind = 'campaign' AND s.id = c.campaign_id
                  JOIN camp_new n USING (campaign_id)
                  WHERE {' AND '.join(where)} ORDER BY c.score DESC, c.size DESC, c.campaign_id"""
        with self._lock:
            return _dicts(self._cursor(statuses).execute(sql, args))

    def queue_accounts(self, f: Filters, statuses: dict[tuple[str, str], Decision], *, page: int,
                       page_size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of flagged accounts outside campaigns (highest score, then most exchanges first), and how
        many match in all."""
        where, args = self._filters(f, ["a.flagged", "a.account_id NOT IN (SELECT account_id FROM members)"],
                                    capability="i.capability = ?", first_seen="i.first_seen")
        base = f"""FROM acc a LEFT JOIN ix_accounts i USING (account_id)
                   LEFT JOIN _status s ON s.kind = 'account' AND s.id = a.account_id
                   WHERE {' AND '.join(where)}"""
        with self._lock:
            cur = self._cursor(statuses)
            total = int(cur.execute(f"SELECT count(*) {base}", args).fetchone()[0])  # type: ignore[index]
            rows = _dicts(cur.execute(
                f"""SELECT a.account_id, a.score, a.n_exchanges, a.flag_reason, a.flagged_alone, i.capability,
                           i.first_seen, i.last_seen, coalesce(s.status, 'open') AS status,
                           a.account_id NOT IN (SELECT account_id FROM prev) AS new
                    {base} ORDER BY a.score DESC, a.n_exchanges DESC, a.account_id LIMIT ? OFFSET ?""",
                [*args, page_size, page * page_size]))
        return rows, total

    def counts(self) -> dict[str, int]:
        """Totals and what is new since the previous scan the console saw."""
        with self._lock:
            row = self._con.execute("""SELECT
                (SELECT count(*) FROM acc), (SELECT count(*) FROM acc WHERE flagged),
                (SELECT count(*) FROM acc WHERE flagged AND account_id NOT IN (SELECT account_id FROM prev)),
                (SELECT count(*) FROM camp_new WHERE new),
                (SELECT count(*) FROM acc WHERE flagged AND account_id NOT IN (SELECT account_id FROM members))
                """).fetchone()
        assert row is not None  # one row, always
        return {"accounts": row[0], "flagged": row[1], "new_flagged": row[2], "new_campaigns": row[3],
                "campaigns": len(self.campaigns), "outside": row[4]}

    # -- one campaign or account -----------------------------------------------------------------

    def campaign(self, campaign_id: str) -> Campaign:
        c = self.by_id.get(campaign_id)
        if c is None:
            raise KeyError(campaign_id)
        return c

    def members(self, campaign_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The campaign's members, highest score first, with their flag reasons."""
        with self._lock:
            return _dicts(self._con.cursor().execute(
                """SELECT a.account_id, a.score, a.flagged, a.flagged_alone, a.n_exchanges, a.flag_reason,
                          a.link_evidence FROM members m JOIN acc a USING (account_id)
                   WHERE m.campaign_id = ? ORDER BY a.score DESC, a.account_id LIMIT ?""", [campaign_id, limit]))

    def timeline_by_capability(self, campaign_id: str) -> dict[str, list[tuple[str, int]]]:
        """Per capability (largest first), ``[hour, exchanges]`` in time order."""
        with self._lock:
            rows = self._con.cursor().execute(
                """SELECT capability, strftime(hour, '%Y-%m-%dT%H:%MZ'), n FROM ix_timeline
                   WHERE campaign_id = ? ORDER BY hour, capability""", [campaign_id]).fetchall()
        out: dict[str, list[tuple[str, int]]] = {}
        for cap, hour, n in rows:
            out.setdefault(cap, []).append((hour, int(n)))
        return dict(sorted(out.items(), key=lambda kv: (-sum(n for _, n in kv[1]), kv[0])))  # ties by name

    def samples(self, campaign_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return _dicts(self._con.cursor().execute(
                "SELECT * FROM ix_samples WHERE campaign_id = ? ORDER BY timestamp, exchange_id", [campaign_id]))

    def account(self, account_id: str) -> dict[str, Any] | None:
        """The account's row of ``accounts.parquet`` (none if the scan did not see it)."""
        with self._lock:
            rows = _dicts(self._con.cursor().execute(
                """SELECT a.*, i.capability, i.first_seen, i.last_seen FROM acc a LEFT JOIN ix_accounts i
                   USING (account_id) WHERE a.account_id = ?""", [account_id]))
        return rows[0] if rows else None

    def flagged_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._con.execute("SELECT account_id FROM acc WHERE flagged").fetchall()}

    def close(self) -> None:
        self.pictures.close()
        self._con.close()


_CAMPAIGN_ROW = pa.schema([("campaign_id", pa.string()), ("cluster_id", pa.string()), ("size", pa.int64()),
                           ("score", pa.float64()), ("exchange_count", pa.int64()),
                           ("top_capability", pa.string()), ("capability_list", pa.list_(pa.string())),
                           ("first_seen", pa.timestamp("us", tz="UTC")), ("last_seen", pa.timestamp("us", tz="UTC"))])


def _campaign_row(c: Campaign) -> dict[str, Any]:
    caps = sorted(c.capabilities, key=lambda k: -c.capabilities[k])  # a capability counts from a fifth of traffic
    return {"campaign_id": c.campaign_id, "cluster_id": c.cluster_id, "size": len(c.account_ids), "score": c.score,
            "exchange_count": c.exchange_count, "top_capability": caps[0] if caps else None,
            "capability_list": [k for k in caps if c.capabilities[k] >= 0.2] or caps[:1],
            "first_seen": c.first_seen, "last_seen": c.last_seen}


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _q(path: Path) -> str:
    return str(path).replace("'", "''")
