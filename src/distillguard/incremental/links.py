"""The link stage's inputs over a window, read from the per-day aggregates instead of the exchanges.

``link.link_accounts`` reads, per account, the distinct network values (``exchanges``), the
template counts, the release pivot and the lockstep tokens with first times (``signals``);
each is a union (or a sum) over days of a per-day aggregate, so the same evidence, edges and
clusters come from ``agg_network``, ``agg_templates``, ``agg_release`` and ``agg_sync``
(``tests/incremental`` checks the links equal a full scan's).
"""

from __future__ import annotations

from distillguard.engine import Engine
from distillguard.incremental.merge import release_sql
from distillguard.link import LinkInputs
from distillguard.store import Store

__all__ = ["window_link_inputs"]


def window_link_inputs(store: Store, engine: Engine, first_day: int) -> LinkInputs:
    """``LinkInputs`` over the days from ``first_day``: views of the aggregates (``_window_*``)."""
    con = store.con
    con.execute(f"""CREATE OR REPLACE TEMP VIEW _window_network AS SELECT account_id, client_ip, client_asn,
                    user_agent, tls_fingerprint FROM agg_network WHERE day >= {first_day}""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW _window_sync AS SELECT account_id, template_sig, t_s
                    FROM agg_sync WHERE day >= {first_day}""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW _window_templates AS SELECT account_id, template_sig,
                    template_simhash, template_head, CAST(sum(c) AS BIGINT) AS c FROM agg_templates
                    WHERE day >= {first_day} GROUP BY ALL""")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _window_release AS {release_sql(first_day)}")
    partner = engine.table("partner_indicators") if store.count("partner_indicators") else None
    return LinkInputs(engine.table("_window_network"), engine.table("_window_sync"), engine.table("accounts"),
                      engine.table("events"), partner, templates=engine.table("_window_templates"),
                      release=engine.table("_window_release"))
