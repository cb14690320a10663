"""The link stage's inputs over a window, read from the per-day aggregates instead of the exchanges.

``link.link_accounts`` reads, per account, the distinct network values (``exchanges``), the
template counts, the release pivot and the lockstep tokens with first times (``signals``);
each is a union (or a sum) over days of a per-day aggregate, so the same evidence, edges and
clusters come from ``agg_network``, ``agg_templates``, ``agg_release`` and ``agg_sync``
(``tests/incremental`` checks the links equal a full scan's).
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from distillguard.config import LinkSettings
from distillguard.engine import Engine
from distillguard.incremental.merge import release_sql
from distillguard.link import LinkInputs, link_edges
from distillguard.store import Store

__all__ = ["CompiledEdges", "window_link_inputs"]


def window_link_inputs(store: Store, engine: Engine, *, first_day: int, reference_accounts: int = 0) -> LinkInputs:
    """``LinkInputs`` over the days from ``first_day``, from the aggregates (temporary tables ``_window_*``).

    Materialized once per scan: the link expression reads each of them several times.
    ``reference_accounts``: how many accounts the vetted reference kept; its evidence values
    (``reference_values``) are then scaled to this population here, in SQL, as ``stages.run_link``
    scales them, so that the link expression stays the same from one replay window to the next
    (its SQL is compiled once: ``engine.DuckDBEngine``). Link with ``reference_accounts=0`` then.
    """
    con = store.con
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _window_network AS SELECT DISTINCT account_id, client_ip,
                    client_asn, user_agent, tls_fingerprint FROM agg_network WHERE day >= {first_day}""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _window_sync AS SELECT account_id, template_sig, t_s
                    FROM agg_sync WHERE day >= {first_day}""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _window_templates AS SELECT account_id, template_sig,
                    template_simhash, template_head, template_tail, CAST(sum(c) AS BIGINT) AS c FROM agg_templates
                    WHERE day >= {first_day} GROUP BY ALL""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _window_release AS {release_sql(first_day)}")
    partner = engine.table("partner_indicators") if store.count("partner_indicators") else None
    reference = None
    if reference_accounts and store.count("reference_values"):
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _window_reference AS SELECT kind, value,
                        CAST(accounts AS DOUBLE) * ((SELECT count(DISTINCT account_id) FROM _window_sync)
                                                    / {int(reference_accounts)}) AS accounts
                        FROM reference_values""")
        reference = engine.table("_window_reference")
    return LinkInputs(engine.table("_window_network"), engine.table("_window_sync"), engine.table("accounts"),
                      engine.table("events"), partner, reference=reference, templates=engine.table("_window_templates"),
                      release=engine.table("_window_release"))


class CompiledEdges:
    """``link.link_edges`` over the ``_window_*`` tables, compiled to SQL once and run again at every window.

    Compiling the link expression took as long as running it on a day of traffic (0.4 s), and
    replay links once per window over the same table names; each run reads their contents then.
    """

    def __init__(self, store: Store, inputs: LinkInputs, settings: LinkSettings) -> None:
        self.store = store
        self.expr = link_edges(inputs, settings).order_by(["src", "dst"])
        self.sql = str(ibis.to_sql(self.expr, dialect="duckdb"))

    def __call__(self) -> pa.Table:
        """The edges over the tables' contents now (as ``Engine.execute`` returns them)."""
        from ibis.backends.duckdb.converter import DuckDBPyArrowData

        table = self.store.con.sql(self.sql).to_arrow_table()
        return self.expr.__pyarrow_result__(table, data_mapper=DuckDBPyArrowData)
