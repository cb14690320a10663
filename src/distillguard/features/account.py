"""Per-account behavioural fingerprint over the scanned period (Ibis, built-in ops only).

Volume and tokens, inter-arrival regularity, diurnal and weekly spread, duty
cycle (share of active hours within the account's active span), conversation depth,
tool use, template reuse, signup path, and the mean of the topic SimHash bits
(the account's mean embedding, from which ``features.topic_distance`` measures how far its
prompts are from the benign reference). Every column is an aggregate the same on DuckDB
and Spark; entropies are normalized to [0, 1] by log(24) and log(7).
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.types as ir

TOPIC_BITS = 64


def account_features(signals: ir.Table, accounts: ir.Table, events: ir.Table) -> ir.Table:
    """One row per account with the columns of ``schema.ACCOUNT_FEATURES``."""
    return finish_features(account_totals(signals), release_pivot(signals, events), accounts)


def account_totals(signals: ir.Table) -> ir.Table:
    """Per account, the aggregates of its exchanges that ``finish_features`` turns into features.

    Counts, sums, extremes, the inter-arrival mean and spread, hour and weekday entropies, the
    largest template and capability counts, and the mean of each topic-SimHash bit (``_bit0`` ...).
    ``distillguard.incremental`` builds the same table from per-day aggregates.
    """
    s = signals
    w = ibis.window(group_by=s.account_id, order_by=[s.t_s, s.exchange_id])
    s = s.mutate(iat=s.t_s - s.t_s.lag().over(w))
    base = s.group_by("account_id").aggregate(
        n_exchanges=s.count(),
        n_active_days=s.day_index.nunique(),
        first_seen=s.timestamp.min(),
        last_seen=s.timestamp.max(),
        input_tokens=s.input_tokens.fill_null(0).sum(),
        output_tokens=s.output_tokens.fill_null(0).sum(),
        mean_prompt_chars=s.prompt_chars.mean(),
        iat_mean=s.iat.mean(),
        iat_std=s.iat.std(how="pop"),
        multi_turn_share=(s.n_user_turns.fill_null(0) > 1).cast("float64").mean(),
        tool_share=(s.n_tools.fill_null(0) > 0).cast("float64").mean(),
        distinct_templates=s.template_sig.nunique(),
        elicitation_rate=(s.elicitation.fill_null(0.0) > 0.5).cast("float64").mean(),
        first_t_s=s.t_s.min(),
        last_t_s=s.t_s.max(),
        active_hours=(s.t_s / 3600.0).floor().nunique(),
        harvest_format_share=s.harvest_format.fill_null(0.0).mean(),
        distinct_temperatures=s.temperature.nunique(),
        safeguard_rate=(s.safeguard_stripping.fill_null(0.0) > 0.5).cast("float64").mean(),
        **{f"_bit{b}": ((s.topic_simhash >> b) & 1).cast("float64").mean() for b in range(TOPIC_BITS)},
    )
    hours = signals.group_by(["account_id", "hour_of_day"]).aggregate(c=signals.count())
    hours = hours.join(base.select("account_id", "n_exchanges"), "account_id")
    p = hours.c.cast("float64") / hours.n_exchanges.cast("float64")
    entropy = hours.group_by("account_id").aggregate(
        hour_entropy=(-(p * p.ln())).sum() / math.log(24)
    )
    days = signals.group_by(["account_id", "day_of_week"]).aggregate(c=signals.count())
    days = days.join(base.select("account_id", "n_exchanges"), "account_id")
    q = days.c.cast("float64") / days.n_exchanges.cast("float64")
    weekly = days.group_by("account_id").aggregate(weekly_entropy=(-(q * q.ln())).sum() / math.log(7))
    templates = signals.group_by(["account_id", "template_sig"]).aggregate(c=signals.count())
    top = templates.group_by("account_id").aggregate(top_template=templates.c.max())
    caps = signals.group_by(["account_id", "capability"]).aggregate(c=signals.count())
    top_cap = caps.group_by("account_id").aggregate(top_capability=caps.c.max())
    return base.join(entropy, "account_id").join(weekly, "account_id").join(top, "account_id").join(top_cap,
                                                                                                   "account_id")


def finish_features(totals: ir.Table, pivot: ir.Table, accounts: ir.Table) -> ir.Table:
    """``schema.ACCOUNT_FEATURES`` rows from ``account_totals``, the release pivot (``release_pivot``:
    account_id, new_model_share_24h) and the accounts' own facts (sign-up, payment card)."""
    t = (totals.left_join(pivot, "account_id", rname="{name}_pivot")
         .left_join(accounts.select("account_id", "signup_path",
                                    created_s=accounts.created_at.epoch_seconds().cast("float64")),
                    "account_id", rname="{name}_acct")
         .left_join(payment_sharing(accounts), "account_id", rname="{name}_pay"))
    n = t.n_exchanges.cast("float64")
    return t.select(
        "account_id",
        "n_exchanges",
        "n_active_days",
        "first_seen",
        "last_seen",
        "input_tokens",
        "output_tokens",
        output_input_ratio=t.output_tokens.cast("float64") / ibis.greatest(t.input_tokens, 1).cast("float64"),
        mean_prompt_chars=t.mean_prompt_chars.cast("float64"),
        iat_cv=ibis.ifelse(t.iat_mean > 0, t.iat_std / t.iat_mean, ibis.null("float64")),
        hour_entropy=t.hour_entropy,
        weekly_entropy=t.weekly_entropy,
        # Share of the hours between first and last request with any traffic: near 1 for machines.
        duty_cycle=t.active_hours.cast("float64")
        / ((t.last_t_s / 3600.0).floor() - (t.first_t_s / 3600.0).floor() + 1.0),
        multi_turn_share=t.multi_turn_share,
        tool_share=t.tool_share,
        distinct_templates=t.distinct_templates,
        template_reuse=1.0 - t.distinct_templates.cast("float64") / n,
        top_template_share=t.top_template.cast("float64") / n,
        exchanges_per_active_day=n / t.n_active_days.cast("float64"),
        elicitation_rate=t.elicitation_rate,
        top_capability_share=t.top_capability.cast("float64") / n,
        new_model_share_24h=t.new_model_share_24h,
        account_age_days=(t.first_t_s - t.created_s) / 86400.0,
        harvest_format_share=t.harvest_format_share,
        distinct_temperatures=t.distinct_temperatures,
        safeguard_rate=t.safeguard_rate,
        signup_path=t.signup_path,
        payment_shared_accounts=t.payment_shared_accounts.fill_null(0),
        topic_bits=ibis.array([t[f"_bit{b}"] for b in range(TOPIC_BITS)]),
    ).order_by("account_id")


def window_features(signals: ir.Table, accounts: ir.Table, *, events: ir.Table, seconds: float) -> ir.Table:
    """``account_features`` of each account's traffic in each window of ``seconds`` (UTC-aligned).

    The row id is ``"<account_id>@<window index>"``; the account's own metadata
    (age, signup path) carries over. An account that harvests in bursts looks
    ordinary over a month and unusual in its busiest day.
    """
    key = signals.account_id + "@" + (signals.t_s / seconds).floor().cast("int64").cast("string")
    s = signals.mutate(owner=signals.account_id, account_id=key)
    keys = s.select("owner", "account_id").distinct()
    windowed = keys.join(accounts, keys.owner == accounts.account_id).select(
        keys.account_id, *[accounts[c] for c in accounts.columns if c != "account_id"])
    return account_features(s.drop("owner"), windowed, events)


def payment_sharing(accounts: ir.Table) -> ir.Table:
    """``(account_id, payment_shared_accounts)``: other accounts on the same payment fingerprint that are
    not in the account's organization (an account without one is its own).

    A company card behind its organization's accounts is ordinary; one card behind many
    unrelated accounts is how a hydra cluster pays.
    """
    a = accounts.filter(accounts.payment_fingerprint.notnull() & (accounts.payment_fingerprint != ""))
    a = a.select("account_id", "payment_fingerprint",
                 org=a.organization_id.fill_null("acct:" + a.account_id))
    cards = a.group_by("payment_fingerprint").aggregate(card_accounts=a.count())
    orgs = a.group_by(["payment_fingerprint", "org"]).aggregate(org_accounts=a.count())
    j = a.join(cards, "payment_fingerprint").join(orgs, ["payment_fingerprint", "org"])
    return j.select("account_id", payment_shared_accounts=(j.card_accounts - j.org_accounts).cast("int64"))


def release_pivot(signals: ir.Table, events: ir.Table) -> ir.Table:
    """Share of each account's traffic in the 24 h after a model release that used the new model.

    Harvesters move to a new model at once (the disclosure: half the traffic within
    24 hours); most customers migrate over weeks. Accounts with no traffic in any
    post-release window get no row (a null feature).
    """
    rel = events.filter(events.type == "model_release").select(
        rel_s=events.timestamp.epoch_seconds().cast("float64"), rel_model=events.model
    )
    joined = signals.cross_join(rel)
    window = joined.filter((joined.t_s >= joined.rel_s) & (joined.t_s < joined.rel_s + 86400.0))
    return window.group_by("account_id").aggregate(
        new_model_share_24h=(window.model == window.rel_model).cast("float64").mean()
    )
