"""Accounts that rotate over the same proxy exits are linked; one shared address is not enough."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from distillguard.config import LinkSettings
from distillguard.engine import DuckDBEngine
from distillguard.link import LinkInputs, link_accounts
from distillguard.schema import ACCOUNTS, EXCHANGES, SIGNALS
from distillguard.store import Store

T0 = datetime(2026, 2, 2, tzinfo=UTC)


def _pool(path: Path, exits: int) -> Store:
    """60 old accounts (a year since sign-up), each with its own template, all sending through the same
    ``exits`` addresses and nobody else: a datacenter proxy pool rented by one operation."""
    ex, sig, acc = [], [], []
    for a in range(60):
        account = f"a{a:02d}"
        acc.append({k: None for k in ACCOUNTS.names} | {"account_id": account, "created_at": T0 - timedelta(days=365)})
        for j in range(exits):
            ts = T0 + timedelta(hours=a, minutes=j)
            row = {"exchange_id": f"x{a}-{j}", "timestamp": ts, "account_id": account, "client_ip": f"10.9.{j}.7"}
            ex.append({k: row.get(k) for k in EXCHANGES.names})
            sig.append({k: None for k in SIGNALS.names} | {
                "exchange_id": row["exchange_id"], "account_id": account, "timestamp": ts, "t_s": ts.timestamp(),
                "template_sig": f"tpl-{a}", "template_simhash": a, "template_head": f"head-{a}"})
    store = Store.open(path)
    store.append("exchanges", pa.Table.from_pylist(ex, schema=EXCHANGES))
    store.append("signals", pa.Table.from_pylist(sig, schema=SIGNALS))
    store.append("accounts", pa.Table.from_pylist(acc, schema=ACCOUNTS))
    return store


def _clusters(store: Store) -> pa.Table:
    engine = DuckDBEngine(store)
    inputs = LinkInputs(*(engine.table(n) for n in ("exchanges", "signals", "accounts", "events")))
    return link_accounts(engine.execute, inputs, settings=LinkSettings(min_sync_bins=99)).clusters


def test_accounts_rotating_over_the_same_exits_are_one_cluster(tmp_path: Path) -> None:
    with _pool(tmp_path / "pool.duckdb", exits=6) as store:
        clusters = _clusters(store)
        assert clusters.num_rows == 60 and len(set(clusters.column("cluster_id").to_pylist())) == 1


def test_one_shared_address_does_not_link(tmp_path: Path) -> None:
    with _pool(tmp_path / "nat.duckdb", exits=1) as store:  # 60 accounts behind one NAT address
        assert _clusters(store).num_rows == 0
