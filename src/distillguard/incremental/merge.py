"""Account features over a window of days, merged from the per-day aggregates (``daily``).

``totals`` builds, from the aggregates of the days in the window, the table
``features.account.account_totals`` builds from the exchanges; ``finish_features`` (the same
Ibis expression a full scan runs) turns it into ``schema.ACCOUNT_FEATURES``. Integer counts and
sums merge exactly; so do the inter-arrival sums, whose values lie on the grid of ``t_s``
(a difference of two ``t_s`` is exact, and so is any sum of them while it stays below
2^31 s); the inter-arrival spread is merged with Chan's formula, and entropies sum the same
terms in another order, so they agree with a full scan's to about 1e-15, well inside the
9 decimals features are rounded to (``stages.rounded``). ``tests/incremental`` checks the
merged features equal ``account_features`` over the same exchanges.
"""

from __future__ import annotations

import math

import ibis
import pyarrow as pa

from distillguard.features.account import TOPIC_BITS, finish_features
from distillguard.incremental.daily import HOURS
from distillguard.store import Store

__all__ = ["merged_features", "release_sql", "totals_sql"]


def totals_sql(first_day: int, accounts: str) -> str:
    """SQL of ``account_totals`` for the accounts in table ``accounts`` over the days from ``first_day``."""
    bits = ", ".join(f"CASE WHEN sum(topic_n) > 0 THEN CAST(sum(b{b}) AS DOUBLE) / sum(topic_n) END AS _bit{b}"
                     for b in range(TOPIC_BITS))
    hours = ", ".join(f"h{h}" for h in range(HOURS))
    return f"""
WITH a AS (SELECT * FROM agg_activity WHERE day >= {first_day} AND account_id IN (SELECT account_id FROM {accounts})),
d AS (SELECT account_id, iat_n, iat_sum, iat_m2,
             first_t_s - lag(last_t_s) OVER (PARTITION BY account_id ORDER BY day) AS gap FROM a),
i AS (SELECT account_id, sum(iat_n) + count(gap) AS n, sum(iat_sum) + coalesce(sum(gap), 0.0) AS s
      FROM d GROUP BY account_id),
iat AS (SELECT d.account_id, CASE WHEN i.n > 0 THEN i.s / i.n END AS mean, i.n AS n,
               sum(d.iat_m2 + CASE WHEN d.iat_n > 0 THEN d.iat_n * pow(d.iat_sum / d.iat_n - i.s / i.n, 2) ELSE 0.0 END
                   + CASE WHEN d.gap IS NOT NULL THEN pow(d.gap - i.s / i.n, 2) ELSE 0.0 END) AS m2
        FROM d JOIN i USING (account_id) GROUP BY d.account_id, i.n, i.s),
base AS (
  SELECT account_id, CAST(sum(n) AS BIGINT) AS n_exchanges, count(*) AS n_active_days, min(first_seen) AS first_seen,
         max(last_seen) AS last_seen, CAST(sum(input_tokens) AS BIGINT) AS input_tokens,
         CAST(sum(output_tokens) AS BIGINT) AS output_tokens,
         CASE WHEN sum(prompt_chars_n) > 0 THEN CAST(sum(prompt_chars_sum) AS DOUBLE) / sum(prompt_chars_n) END
           AS mean_prompt_chars,
         CAST(sum(multi_turn) AS DOUBLE) / sum(n) AS multi_turn_share,
         CAST(sum(tools) AS DOUBLE) / sum(n) AS tool_share,
         CAST(sum(elicited) AS DOUBLE) / sum(n) AS elicitation_rate, min(first_t_s) AS first_t_s,
         max(last_t_s) AS last_t_s, CAST(sum(active_hours) AS BIGINT) AS active_hours,
         sum(harvest_sum) / sum(n) AS harvest_format_share, CAST(sum(safeguard) AS DOUBLE) / sum(n) AS safeguard_rate,
         {bits}
  FROM a GROUP BY account_id),
hc AS (SELECT account_id, hour, sum(c) AS c FROM (UNPIVOT (SELECT account_id, {hours} FROM a)
         ON {hours} INTO NAME hour VALUE c) GROUP BY ALL HAVING sum(c) > 0),
he AS (SELECT hc.account_id, sum(-((CAST(hc.c AS DOUBLE) / b.n_exchanges) * ln(CAST(hc.c AS DOUBLE) / b.n_exchanges)))
         / {math.log(24)!r} AS hour_entropy FROM hc JOIN base b USING (account_id) GROUP BY hc.account_id),
wc AS (SELECT account_id, day_of_week, sum(n) AS c FROM a GROUP BY ALL),
we AS (SELECT wc.account_id, sum(-((CAST(wc.c AS DOUBLE) / b.n_exchanges) * ln(CAST(wc.c AS DOUBLE) / b.n_exchanges)))
         / {math.log(7)!r} AS weekly_entropy FROM wc JOIN base b USING (account_id) GROUP BY wc.account_id),
tpl AS (SELECT account_id, template_sig, CAST(sum(c) AS BIGINT) AS c FROM agg_templates
        WHERE day >= {first_day} AND account_id IN (SELECT account_id FROM {accounts}) GROUP BY ALL),
tt AS (SELECT account_id, count(template_sig) AS distinct_templates, max(c) AS top_template FROM tpl GROUP BY ALL),
cap AS (SELECT account_id, capability, CAST(sum(c) AS BIGINT) AS c FROM agg_capabilities
        WHERE day >= {first_day} AND account_id IN (SELECT account_id FROM {accounts}) GROUP BY ALL),
tc AS (SELECT account_id, max(c) AS top_capability FROM cap GROUP BY ALL),
temp AS (SELECT account_id, count(DISTINCT temperature) AS distinct_temperatures FROM agg_temperatures
         WHERE day >= {first_day} AND account_id IN (SELECT account_id FROM {accounts}) GROUP BY ALL)
SELECT base.account_id, n_exchanges, n_active_days, first_seen, last_seen, input_tokens, output_tokens,
       mean_prompt_chars, iat.mean AS iat_mean, CASE WHEN iat.n > 0 THEN sqrt(iat.m2 / iat.n) END AS iat_std,
       multi_turn_share, tool_share, tt.distinct_templates, elicitation_rate, first_t_s, last_t_s, active_hours,
       harvest_format_share, coalesce(temp.distinct_temperatures, 0) AS distinct_temperatures, safeguard_rate,
       {", ".join(f"_bit{b}" for b in range(TOPIC_BITS))},
       he.hour_entropy, we.weekly_entropy, tt.top_template, tc.top_capability
FROM base JOIN iat USING (account_id) JOIN he USING (account_id) JOIN we USING (account_id)
     JOIN tt USING (account_id) JOIN tc USING (account_id) LEFT JOIN temp USING (account_id)"""


def release_sql(first_day: int, accounts: str | None = None) -> str:
    """SQL of ``release_pivot`` (account_id, new_model_share_24h) over the days from ``first_day``, for the
    accounts in table ``accounts`` (None: all)."""
    among = "" if accounts is None else f" AND account_id IN (SELECT account_id FROM {accounts})"
    return f"""SELECT account_id, CASE WHEN sum(compared) > 0 THEN CAST(sum(moved) AS DOUBLE) / sum(compared) END
                 AS new_model_share_24h
               FROM agg_release WHERE day >= {first_day}{among} GROUP BY account_id"""


def merged_features(store: Store, first_day: int, accounts: str) -> pa.Table:
    """``schema.ACCOUNT_FEATURES`` rows (unrounded, by account) of the accounts in table ``accounts`` over the
    days from ``first_day``, from the aggregates."""
    con = store.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE _totals AS {totals_sql(first_day, accounts)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pivot AS {release_sql(first_day, accounts)}")
    try:
        return con.execute(_finish_sql(store)).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS _totals")
        con.execute("DROP TABLE IF EXISTS _pivot")


_COMPILED: dict[str, str] = {}


def _finish_sql(store: Store) -> str:
    """``finish_features`` over ``_totals``, ``_pivot`` and ``accounts``, compiled to SQL once per process
    (compiling the Ibis expression takes longer than running it on an hour of traffic)."""
    if "finish" not in _COMPILED:
        backend = ibis.duckdb.from_connection(store.con)
        expr = finish_features(backend.table("_totals"), backend.table("_pivot"), backend.table("accounts"))
        _COMPILED["finish"] = str(ibis.to_sql(expr, dialect="duckdb"))
    return _COMPILED["finish"]
