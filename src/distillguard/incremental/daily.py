"""Per-account, per-day aggregates: what account features and link evidence need, mergeable over days.

An account's features over a window are a function of its exchanges; every feature is
also a function of a few aggregates per (account, UTC day) that merge across days
(``merge``): counts and sums, first and last times, the inter-arrival count, sum and sum of
squared deviations (merged across days with Chan's formula, the gaps between days added),
hour-of-day and topic-bit counts, and the sets and counts of templates, capabilities,
temperatures, network values and lockstep bins. A day of an account is aggregated from its
rows alone, so an incremental scan re-aggregates only the (account, day) pairs new
exchanges fell in: its cost follows the new traffic, not the stored month.

Tables (DuckDB, in the scan's store; ``day`` is ``signals.day_index``):

- ``agg_activity``: one row per (account, day): counts, sums, extremes, inter-arrival
  statistics, ``h0``..``h23`` (exchanges per hour of day), ``b0``..``b63`` (exchanges with
  each topic-SimHash bit set) and ``topic_n`` (exchanges with a SimHash);
- ``agg_templates``: exchanges per (account, day, template signature, SimHash, head, tail);
- ``agg_capabilities``: exchanges per (account, day, capability);
- ``agg_temperatures``: the temperatures used per (account, day);
- ``agg_network``: the distinct (client IP, ASN, user agent, TLS fingerprint) per (account, day);
- ``agg_sync``: the (template signature, 15-minute bin) tokens per (account, day) with the
  first time in each (for ``link.graph.synchrony_pairs`` and first-seen times);
- ``agg_release``: per (account, day, model release), the exchanges in the 24 h after the
  release compared with its model, and how many used it (rebuilt when events change).

>>> sorted(TABLES)[:3]
['agg_activity', 'agg_capabilities', 'agg_network']
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from distillguard.features.account import TOPIC_BITS
from distillguard.link.graph import SYNC_BIN_SECONDS
from distillguard.store import Store

__all__ = ["TABLES", "clear", "create_tables", "refresh", "refresh_release"]

log = logging.getLogger(__name__)
HOURS = 24
_ID = "account_id VARCHAR, day BIGINT"
TABLES = {
    "agg_activity": (
        f"{_ID}, n BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, first_t_s DOUBLE, last_t_s DOUBLE, "
        "input_tokens BIGINT, output_tokens BIGINT, prompt_chars_sum BIGINT, prompt_chars_n BIGINT, "
        "iat_n BIGINT, iat_sum DOUBLE, iat_m2 DOUBLE, multi_turn BIGINT, tools BIGINT, elicited BIGINT, "
        "harvest_sum DOUBLE, safeguard BIGINT, active_hours BIGINT, day_of_week INTEGER, "
        + ", ".join(f"h{h} BIGINT" for h in range(HOURS)) + ", topic_n BIGINT, "
        + ", ".join(f"b{b} BIGINT" for b in range(TOPIC_BITS))
    ),
    "agg_templates": f"{_ID}, template_sig VARCHAR, template_simhash BIGINT, template_head VARCHAR, "
                     "template_tail VARCHAR, c BIGINT",
    "agg_capabilities": f"{_ID}, capability VARCHAR, c BIGINT",
    "agg_temperatures": f"{_ID}, temperature DOUBLE",
    "agg_network": f"{_ID}, client_ip VARCHAR, client_asn BIGINT, user_agent VARCHAR, tls_fingerprint VARCHAR",
    "agg_sync": f"{_ID}, template_sig VARCHAR, bin BIGINT, t_s DOUBLE",
    "agg_release": f"{_ID}, rel_s DOUBLE, rel_model VARCHAR, compared BIGINT, moved BIGINT",
}
"""Each aggregate table and its columns (SQL)."""

_ACTIVITY = (
    "count(*), min(timestamp), max(timestamp), min(t_s), max(t_s), "
    "sum(coalesce(input_tokens, 0)), sum(coalesce(output_tokens, 0)), sum(prompt_chars), count(prompt_chars), "
    "count(iat), coalesce(sum(iat), 0.0), coalesce(var_pop(iat) * count(iat), 0.0), "
    "count_if(coalesce(n_user_turns, 0) > 1), count_if(coalesce(n_tools, 0) > 0), "
    "count_if(coalesce(elicitation, 0.0) > 0.5), sum(coalesce(harvest_format, 0.0)), "
    "count_if(coalesce(safeguard_stripping, 0.0) > 0.5), count(DISTINCT CAST(floor(t_s / 3600.0) AS BIGINT)), "
    "min(day_of_week), "
    + ", ".join(f"count_if(hour_of_day = {h})" for h in range(HOURS)) + ", count(topic_simhash), "
    + ", ".join(f"count_if(((topic_simhash >> {b}) & 1) = 1)" for b in range(TOPIC_BITS))
)


def create_tables(store: Store, *, temporary: bool = False) -> None:
    """Create the aggregate tables in ``store`` if they are not there; ``temporary``: for this connection only
    (they then hide any stored ones of the same name)."""
    for name, columns in TABLES.items():
        store.con.execute(f"CREATE {'TEMP ' if temporary else ''}TABLE IF NOT EXISTS {name} ({columns})")
        if not temporary:
            store.con.execute(f"CREATE OR REPLACE TEMP TABLE _declared ({columns})")
            store.add_missing_columns(name, "SELECT * FROM _declared")
            store.con.execute("DROP TABLE _declared")


def clear(store: Store) -> None:
    """Empty every aggregate table (before aggregating a store anew)."""
    with store.transaction():
        for name in TABLES:
            store.con.execute(f"DELETE FROM {name}")


def refresh(store: Store, touched: str, *, before: datetime | None = None) -> int:
    """Aggregate again the (account, day) pairs in table ``touched`` (``account_id``, ``day``) from the
    store's ``signals`` and ``exchanges`` before ``before`` (all: None); returns how many pairs.

    Runs in one transaction: an interrupted refresh leaves the aggregates as they were.
    """
    con = store.con
    row = con.execute(f"SELECT count(*), min(day), max(day) FROM {touched}").fetchone()
    if row is None or not row[0]:
        return 0
    pairs, lo, hi = int(row[0]), int(row[1]), int(row[2])
    # Bounds on time let DuckDB skip the row groups of other days (its min/max zone maps).
    cut = "" if before is None else f" AND s.timestamp < TIMESTAMPTZ '{before.astimezone(UTC).isoformat()}'"
    span = f"s.t_s >= {lo * 86400.0} AND s.t_s < {(hi + 1) * 86400.0}{cut}"
    rows = (f"SELECT s.* FROM signals s JOIN {touched} k ON s.account_id = k.account_id AND s.day_index = k.day "
            f"WHERE {span}")
    exchanges = (f"SELECT s.*, CAST(floor(epoch_us(s.timestamp) / 1e6 / 86400.0) AS BIGINT) AS day "
                 f"FROM exchanges s WHERE s.timestamp >= to_timestamp({lo * 86400}) "
                 f"AND s.timestamp < to_timestamp({(hi + 1) * 86400}){cut}")
    with store.transaction():
        for name in TABLES:
            if name != "agg_release":
                con.execute(f"DELETE FROM {name} t WHERE EXISTS (SELECT 1 FROM {touched} k "
                            "WHERE k.account_id = t.account_id AND k.day = t.day)")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _rows AS {rows}")
        con.execute("""INSERT INTO agg_activity SELECT account_id, day_index, """ + _ACTIVITY + """
            FROM (SELECT *, t_s - lag(t_s) OVER (PARTITION BY account_id, day_index ORDER BY t_s, exchange_id) AS iat
                  FROM _rows) GROUP BY account_id, day_index""")
        # By name: a store from before template_tail has it last (``Store.add_missing_columns``).
        con.execute("""INSERT INTO agg_templates BY NAME SELECT account_id, day_index AS day, template_sig,
            template_simhash, template_head, template_tail, count(*) AS c FROM _rows GROUP BY ALL""")
        con.execute("INSERT INTO agg_capabilities SELECT account_id, day_index, capability, count(*) FROM _rows "
                    "GROUP BY ALL")
        con.execute("INSERT INTO agg_temperatures SELECT DISTINCT account_id, day_index, temperature FROM _rows "
                    "WHERE temperature IS NOT NULL")
        con.execute(f"""INSERT INTO agg_sync SELECT account_id, day_index, template_sig,
            CAST(floor(t_s / {float(SYNC_BIN_SECONDS)}) AS BIGINT) AS bin, min(t_s) FROM _rows GROUP BY ALL""")
        con.execute(f"""INSERT INTO agg_network SELECT DISTINCT s.account_id, s.day, s.client_ip, s.client_asn,
            s.user_agent, s.tls_fingerprint FROM ({exchanges}) s SEMI JOIN {touched} k
            ON s.account_id = k.account_id AND s.day = k.day""")
        con.execute(f"DELETE FROM agg_release t WHERE EXISTS (SELECT 1 FROM {touched} k "
                    "WHERE k.account_id = t.account_id AND k.day = t.day)")
        _insert_release(store, "_rows")
        con.execute("DROP TABLE _rows")
    return pairs


def refresh_release(store: Store, *, before: datetime | None = None) -> None:
    """Rebuild ``agg_release`` from every exchange in the 24 h after each model release (events changed)."""
    cut = "true" if before is None else f"timestamp < TIMESTAMPTZ '{before.astimezone(UTC).isoformat()}'"
    with store.transaction():
        store.con.execute("DELETE FROM agg_release")
        _insert_release(store, f"(SELECT * FROM signals WHERE {cut})")


def _insert_release(store: Store, rows: str) -> None:
    """Add the release aggregates of the signals rows ``rows`` (a table or subquery), as ``release_pivot``
    counts them: a row is compared with every release whose 24 h it falls in; a null model is not compared."""
    store.con.execute(f"""INSERT INTO agg_release
        SELECT r.account_id, r.day_index, e.rel_s, e.rel_model, count(r.model = e.rel_model),
               count_if(r.model = e.rel_model)
        FROM {rows} r JOIN (SELECT CAST(epoch(CAST(timestamp AS TIMESTAMP)) AS DOUBLE) AS rel_s, model AS rel_model
                           FROM events WHERE type = 'model_release') e
          ON r.t_s >= e.rel_s AND r.t_s < e.rel_s + 86400.0
        GROUP BY ALL""")
