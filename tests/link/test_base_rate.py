"""Rarity against the base rate: what ordinary customers hold, not how many accounts hold it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.config import LinkSettings
from distillguard.engine import DuckDBEngine
from distillguard.link import LinkInputs, link_accounts
from distillguard.link.communities import components
from distillguard.schema import ACCOUNTS, EXCHANGES, SIGNALS
from distillguard.store import Store

T0 = datetime(2026, 2, 2, tzinfo=UTC)


def _population(path: Path, fresh: bool) -> Store:
    """40 accounts on one dominant template and e-mail domain, each with its own address; new (created a
    day before first use) or established (a year before)."""
    ex, sig, acc = [], [], []
    for a in range(40):
        account = f"a{a:02d}"
        created = T0 - timedelta(days=1 if fresh else 365)
        acc.append({k: None for k in ACCOUNTS.names} | {"account_id": account, "created_at": created,
                                                         "email_domain": "inbox9.xyz"})
        for j in range(5):
            ts = T0 + timedelta(hours=a, minutes=j)
            row = {"exchange_id": f"x{a}-{j}", "timestamp": ts, "account_id": account, "client_ip": f"10.{a}.0.{j}"}
            ex.append({k: row.get(k) for k in EXCHANGES.names})
            sig.append({k: None for k in SIGNALS.names} | {
                "exchange_id": row["exchange_id"], "account_id": account, "timestamp": ts, "t_s": ts.timestamp(),
                "template_sig": "tpl-shared", "template_simhash": 12345, "template_head": f"head-{a}"})
    store = Store.open(path)
    store.append("exchanges", pa.Table.from_pylist(ex, schema=EXCHANGES))
    store.append("signals", pa.Table.from_pylist(sig, schema=SIGNALS))
    store.append("accounts", pa.Table.from_pylist(acc, schema=ACCOUNTS))
    return store


def _clusters(store: Store, **settings: Any) -> pa.Table:
    engine = DuckDBEngine(store)
    inputs = LinkInputs(*(engine.table(n) for n in ("exchanges", "signals", "accounts", "events")))
    return link_accounts(engine.execute, inputs, settings=LinkSettings(min_sync_bins=99, **settings)).clusters


def test_new_accounts_sharing_what_no_ordinary_customer_holds_are_linked(tmp_path: Path) -> None:
    with _population(tmp_path / "fresh.duckdb", fresh=True) as store:
        clusters = _clusters(store)
        assert clusters.num_rows == 40 and len(set(clusters.column("cluster_id").to_pylist())) == 1
        raw = _clusters(store, base_rate_rarity=False)  # by raw count, 40 holders make weak evidence
        assert raw.num_rows == 0


def test_established_customers_sharing_a_popular_template_are_not(tmp_path: Path) -> None:
    with _population(tmp_path / "old.duckdb", fresh=False) as store:
        assert _clusters(store).num_rows == 0


def test_components_join_what_any_edge_links() -> None:
    edges = pa.table({"src": ["a", "c"], "dst": ["b", "d"]})
    assert components(edges) == {"a": "component-0001", "b": "component-0001",
                                 "c": "component-0002", "d": "component-0002"}


def test_new_accounts_appending_the_same_instructions_to_varied_content_are_linked(tmp_path: Path) -> None:
    """Fresh infrastructure, a new template and opening words every time: only the closing instructions
    (an elicitation appended after the content) repeat, and they are enough."""
    ex, sig, acc = [], [], []
    for a in range(12):
        account = f"t{a:02d}"
        acc.append({k: None for k in ACCOUNTS.names} | {"account_id": account, "created_at": T0 - timedelta(days=1),
                                                         "email_domain": f"mail{a}.example"})
        for j in range(9):
            ts = T0 + timedelta(hours=a, minutes=7 * j)
            row = {"exchange_id": f"t{a}-{j}", "timestamp": ts, "account_id": account, "client_ip": f"10.{a}.1.{j}"}
            ex.append({k: row.get(k) for k in EXCHANGES.names})
            sig.append({k: None for k in SIGNALS.names} | {
                "exchange_id": row["exchange_id"], "account_id": account, "timestamp": ts, "t_s": ts.timestamp(),
                "template_sig": f"tpl-{a}-{j}", "template_simhash": a * 100 + j, "template_head": f"head-{a}-{j}",
                "template_tail": f"closing-{j % 3}"})
    with Store.open(tmp_path / "tails.duckdb") as store:
        store.append("exchanges", pa.Table.from_pylist(ex, schema=EXCHANGES))
        store.append("signals", pa.Table.from_pylist(sig, schema=SIGNALS))
        store.append("accounts", pa.Table.from_pylist(acc, schema=ACCOUNTS))
        engine = DuckDBEngine(store)
        inputs = LinkInputs(*(engine.table(n) for n in ("exchanges", "signals", "accounts", "events")))
        links = link_accounts(engine.execute, inputs, settings=LinkSettings(min_sync_bins=99))
        assert links.clusters.num_rows == 12 and len(set(links.clusters.column("cluster_id").to_pylist())) == 1
        assert all("template_tail" in kinds for kinds in links.edges.column("kinds").to_pylist())
