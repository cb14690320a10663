"""Weighted account graph: rarity-weighted shared evidence plus temporal synchrony.

No all-pairs comparison: pairs come only from values shared by at most
``max_group`` accounts (blocking; LSH bands for templates), so the work grows
with the number of small groups, not with the square of the accounts. A shared
value's weight is its kind's weight times its rarity
``1 - ln(k) / ln(max_group + 1)`` for ``k`` accounts sharing it: 0.89 for a pair,
0.26 for a hundred, nothing at the blocking limit. A shared residential-proxy
exit used by nobody else is strong; a university NAT address is weak.

An edge's weight sums its families (the strongest kind within each family), so
a single shared address (≈0.9) does not link two accounts on its own, but an
address plus a template, or a payment fingerprint, does.
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.types as ir

from distillguard.link.evidence import KINDS, SUMMED_CAP, SUMMED_KINDS, BaseRate

SYNC_BIN_SECONDS = 900


def _kind_weight(kind: ir.StringValue) -> ir.FloatingValue:
    return ibis.cases(*[(kind == k, v.weight) for k, v in KINDS.items()], else_=0.0)


def _family(kind: ir.StringValue) -> ir.StringValue:
    return ibis.cases(*[(kind == k, v.family) for k, v in KINDS.items()], else_="other")


def value_pairs(values: ir.Table, max_group: int, base_rate: BaseRate | None = None) -> ir.Table:
    """``(src, dst, kind, w)``: the strongest shared value of each kind per account pair.

    For ``SUMMED_KINDS`` the shared values add up instead (capped): sharing six
    recurring instructions is stronger evidence than sharing one. With ``base_rate``, a
    pair of *fresh* accounts is weighed by how many ordinary customers hold the value (at
    least 2) instead of how many accounts do: hundreds of new accounts on a template no
    ordinary customer uses are strongly linked, while an established customer on a shared
    proxy exit keeps the raw-count weight (``evidence.ordinary_holders``).
    """
    sizes = values.group_by(["kind", "value"]).aggregate(k=values.count())
    small = sizes.filter((sizes.k >= 2) & (sizes.k <= max_group))
    v = values.join(small, ["kind", "value"])
    top = math.log(max_group + 1)
    if base_rate is not None:
        o = base_rate.ordinary
        v = v.left_join(o, ["kind", "value"], rname="{name}_o")
        v = v.left_join(base_rate.fresh.select("account_id", fresh=ibis.literal(1)), "account_id",
                        rname="{name}_f")
        ordinary = ibis.least(ibis.greatest(v.ordinary.fill_null(v.k.cast("float64")), 2.0), float(max_group + 1))
        v = v.select("account_id", "kind", "value", "k", fresh=v.fresh.fill_null(0), ordinary=ordinary)
    else:
        v = v.select("account_id", "kind", "value", "k", fresh=ibis.literal(0), ordinary=v.k.cast("float64"))
    weight = _kind_weight(v.kind)
    v = v.mutate(w_raw=weight * (1.0 - v.k.cast("float64").ln() / top),
                 w_base=weight * (1.0 - v.ordinary.ln() / top))
    a, b = v.view(), v.view()
    pairs = a.join(b, [a.kind == b.kind, a.value == b.value, a.account_id < b.account_id])
    both_fresh = (a.fresh == 1) & (b.fresh == 1)
    pairs = pairs.select(src=a.account_id, dst=b.account_id, kind=a.kind,
                         w=ibis.ifelse(both_fresh, ibis.greatest(a.w_base, a.w_raw), a.w_raw))
    per_kind = pairs.group_by(["src", "dst", "kind"]).aggregate(w_max=pairs.w.max(), w_sum=pairs.w.sum())
    summed = per_kind.kind.isin(list(SUMMED_KINDS))
    cap = SUMMED_CAP * _kind_weight(per_kind.kind)
    return per_kind.select("src", "dst", "kind",
                           w=ibis.ifelse(summed, ibis.least(per_kind.w_sum, cap), per_kind.w_max))


def synchrony_pairs(signals: ir.Table, *, max_group: int, min_bins: int, full_bins: int,
                    min_jaccard: float = 0.0) -> ir.Table:
    """``(src, dst, kind='sync', w)``: accounts on the same template in the same bins, again and again.

    SynchroTrap-style: a token is (template signature, 15-minute bin); two
    accounts that share at least ``min_bins`` tokens, and at least
    ``min_jaccard`` of the tokens either has, act in lockstep. The weight grows
    with the number of shared bins and is full at ``full_bins``.

    The Jaccard floor matters for busy accounts: one that sends a popular
    template around the clock shares many bins by chance with any quieter
    account on that template (a researcher and a campaign), yet the two share
    a small part of what either does.
    """
    s = signals
    tokens = s.select("account_id", tok=s.template_sig + "@"
                      + (s.t_s / SYNC_BIN_SECONDS).floor().cast("int64").cast("string")).distinct()
    sizes = tokens.group_by("tok").aggregate(k=tokens.count())
    small = sizes.filter((sizes.k >= 2) & (sizes.k <= max_group))
    t = tokens.semi_join(small, "tok")
    a, b = t.view(), t.view()
    pairs = a.join(b, [a.tok == b.tok, a.account_id < b.account_id]).select(src=a.account_id, dst=b.account_id)
    counted = pairs.group_by(["src", "dst"]).aggregate(bins=pairs.count())
    per_account = tokens.group_by("account_id").aggregate(n=tokens.count())
    na, nb = per_account.view(), per_account.view()
    counted = counted.filter(counted.bins >= min_bins)
    counted = counted.join(na, counted.src == na.account_id).select(*counted.columns, n_src=na.n)
    counted = counted.join(nb, counted.dst == nb.account_id).select(*counted.columns, n_dst=nb.n)
    jaccard = counted.bins.cast("float64") / (counted.n_src + counted.n_dst - counted.bins).cast("float64")
    counted = counted.filter(jaccard >= min_jaccard)
    weight = KINDS["sync"].weight * ibis.least(counted.bins.cast("float64") / float(full_bins), 1.0)
    return counted.select("src", "dst", kind=ibis.literal("sync"), w=weight)


def weighted_edges(pairs: ir.Table, min_weight: float) -> ir.Table:
    """``(src, dst, weight, kinds)``: edges whose summed family weights reach ``min_weight``."""
    fam = pairs.mutate(family=_family(pairs.kind))
    per_family = fam.group_by(["src", "dst", "family"]).aggregate(w=fam.w.max())
    totals = per_family.group_by(["src", "dst"]).aggregate(weight=per_family.w.sum())
    kept = totals.filter(totals.weight >= min_weight)
    kinds = pairs.semi_join(kept, ["src", "dst"])
    kinds = kinds.group_by(["src", "dst"]).aggregate(kinds=kinds.kind.collect())
    return kept.join(kinds, ["src", "dst"]).select("src", "dst", "weight", "kinds")
