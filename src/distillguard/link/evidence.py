"""What accounts can share: one ``(account_id, kind, value)`` row per piece of evidence.

Each kind belongs to a family and has a weight (``KINDS``). Within a family only
the strongest shared kind counts (two accounts on one address also share its
/24 and ASN: that is one finding, not three). Ibis only, so any engine runs it.

Kinds:

- network: exact client IP, counted once per address shared (``SUMMED_KINDS``): accounts that
  rotate over the same proxy exits share many, a household or a campus NAT one; IPv4 /24 or
  IPv6 /48 prefix; ASN, weighing more for hosting and proxy ASNs (``HOSTING_ASNS`` plus
  ``link.hosting_asns``);
- client: user agent; TLS fingerprint (set by the front proxy);
- payment: payment fingerprint;
- signup: e-mail domain; creation burst (same signup path, same 10 minutes);
- content: dominant exact prompt template; a band of the dominant template
  SimHash (LSH: paraphrased templates share at least one 16-bit band); the
  recurring instructions an account rotates through, its opening words and its closing
  words (an elicitation appended to varied content), which count once per instruction
  shared (``SUMMED_KINDS``): fresh infrastructure per account does not hide a
  campaign's instruction set;
- release: moved most of its traffic to a new model within 24 h of its release;
- partner: an indicator imported from another provider (``import-stix``).

Temporal synchrony is counted separately (``link.graph.synchrony_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from distillguard.features.account import release_pivot


@dataclass(frozen=True)
class Kind:
    family: str
    weight: float
    label: str  # for evidence sentences: "shared {label}"


KINDS: dict[str, Kind] = {
    "ip": Kind("network", 1.0, "client IP addresses"),
    "prefix": Kind("network", 0.6, "/24 (IPv6: /48) network prefixes"),
    "asn": Kind("network", 0.4, "autonomous systems (ASNs)"),
    "hosting_asn": Kind("network", 0.8, "hosting or proxy autonomous systems"),
    "user_agent": Kind("client", 0.4, "user agents"),
    "tls": Kind("client", 0.4, "TLS fingerprints"),
    "payment": Kind("payment", 2.0, "payment fingerprints"),
    "email_domain": Kind("signup", 0.5, "e-mail domains"),
    "signup_burst": Kind("signup", 0.5, "account-creation bursts"),
    "template": Kind("content", 1.0, "dominant prompt templates"),
    "template_lsh": Kind("content", 0.8, "near-identical prompt templates (SimHash band)"),
    "template_head": Kind("content", 0.5, "prompt instructions (opening words), several in common"),
    "template_tail": Kind("content", 0.5, "prompt instructions (closing words), several in common"),
    "release": Kind("release", 0.4, "a move to the new model within 24 h of its release"),
    "partner": Kind("partner", 1.0, "indicators shared by a partner"),
    "sync": Kind("timing", 1.0, "lockstep activity (same template, same 15-minute bins)"),
}
"""Evidence kinds: family, weight (before rarity), and how evidence sentences name them."""

INSTRUCTION_KINDS = ("template_head", "template_tail")
"""The recurring instructions an account wraps content in: its opening and its closing words."""
SUMMED_KINDS = frozenset({*INSTRUCTION_KINDS, "ip"})
"""Kinds whose shared values add up (capped at ``SUMMED_CAP`` × weight) instead of the strongest counting."""
SUMMED_CAP = 3.0

_BANDS = 4  # 64-bit SimHash in four 16-bit bands
_HEAD_SHARE, _HEAD_MIN = 0.02, 3
"""An instruction recurs in an account's traffic at 3 requests and 2% of them: a campaign rotating over up to
fifty instructions. Measured on the detection benchmark's scans (no reference) of evasive seed 4,
random-campaigns seeds 1, 3 and 4, hard-negatives seed 1 and disclosure-2026 seed 1, as pairs of accounts tied by
instructions alone (weight 1.0 or more), at 5% with short prompts counted → at 2% without them: one campaign's
accounts 4, 34, 94, 35, 9, 3 → 113, 280, 942, 849, 66, 426; benign accounts 143, 193, 202, 211, 440, 203 →
169, 193, 202, 211, 441, 203 (classes and research groups, as before); two campaigns' accounts 0 → 0, 1, 25, 184,
0, 0 (the simulator's campaigns draw instructions from one pool). With no share rule, developers' common
openings tied hundreds of developers."""
_BURST_SECONDS = 600


@dataclass(frozen=True)
class LinkInputs:
    """The tables the link stage reads (a time prefix of them in replay)."""

    exchanges: ir.Table
    signals: ir.Table
    accounts: ir.Table
    events: ir.Table
    partner: ir.Table | None = None  # (kind, value) indicators imported from partners
    # (kind, value, accounts): how many vetted reference accounts held each value, and the
    # reference's size relative to this population (``reference_scale`` = accounts here / there).
    reference: ir.Table | None = None
    reference_scale: float = 1.0
    # Pre-aggregated inputs (``distillguard.incremental``): exchanges per (account_id, template_sig,
    # template_simhash, template_head, template_tail) as ``c``, and the release pivot (account_id, new_model_share_24h).
    # None: counted from ``signals``.
    templates: ir.Table | None = None
    release: ir.Table | None = None


HOSTING_ASNS = (
    16509, 14618, 8987,  # Amazon (AWS)
    15169, 396982, 19527,  # Google Cloud
    8075, 8068,  # Microsoft Azure
    14061,  # DigitalOcean
    16276,  # OVHcloud
    24940,  # Hetzner
    63949,  # Akamai Connected Cloud (Linode)
    20473,  # Vultr (Choopa)
    51167,  # Contabo
    45102,  # Alibaba Cloud
    132203,  # Tencent Cloud
    31898,  # Oracle Cloud
    12876,  # Scaleway
    9009,  # M247 (VPN and proxy exits)
    60068,  # Datacamp / CDN77 (VPN exits)
    212238,  # Datacamp
)
"""Hosting and proxy-heavy ASNs: client traffic from them is rarely a person at home, so a shared
one weighs as ``hosting_asn``. Extend with ``link.hosting_asns`` (your proxy intelligence)."""


def evidence_values(inputs: LinkInputs, min_template_share: float,
                    hosting_asns: tuple[int, ...] = HOSTING_ASNS) -> ir.Table:
    """Distinct ``(account_id, kind, value)`` rows of every kind in ``KINDS`` but ``sync``."""
    templates = inputs.templates if inputs.templates is not None else template_counts(inputs.signals)
    pivot = inputs.release if inputs.release is not None else release_pivot(inputs.signals, inputs.events)
    parts = [*_network(inputs.exchanges, hosting_asns), *_signup(inputs.accounts),
             *_content(templates, min_template_share), _release(pivot)]
    if inputs.partner is not None:
        parts.append(partner_values(inputs.exchanges, inputs.accounts, inputs.partner))
    # UNION ALL: each part is distinct per account and the parts differ by kind, so rows stay unique.
    out = parts[0].union(*parts[1:])
    return out.filter(out.value.notnull() & (out.value != ""))


@dataclass(frozen=True)
class BaseRate:
    """What ordinary customers hold: ``ordinary`` (kind, value, ordinary) and the ``fresh`` accounts
    (account_id) whose shared values are weighed against it (``ordinary_holders``)."""

    ordinary: ir.Table
    fresh: ir.Table


def ordinary_holders(values: ir.Table, inputs: LinkInputs, established_days: float) -> BaseRate:
    """How many *ordinary* customers hold each value, and which accounts are fresh.

    Rarity is weighed against this count, not the raw number of holders: a value shared by
    250 new accounts is weak evidence only if ordinary customers share it that widely.
    Fresh accounts are first used less than ``established_days`` after sign-up; ordinary
    holders are the established accounts here (or of unknown age) or the vetted
    reference's holders scaled to this population's size, whichever is more (the same
    customers are often in both periods). A template or sign-up burst that hundreds of new
    accounts share and no established or reference account uses is strong evidence; a
    popular prompt that long-standing customers paste every week stays weak.
    """
    s, a = inputs.signals, inputs.accounts
    first = s.group_by("account_id").aggregate(first_s=s.t_s.min())
    age = first.join(a.select("account_id", created_s=a.created_at.epoch_seconds().cast("float64")),
                     "account_id")
    fresh = age.filter(age.created_s.notnull() & (age.first_s - age.created_s < established_days * 86400.0))
    fresh = fresh.select("account_id")
    v = values.left_join(fresh.select("account_id", is_fresh=ibis.literal(1)), "account_id", rname="{name}_f")
    counts = v.group_by(["kind", "value"]).aggregate(
        ordinary=(1 - v.is_fresh.fill_null(0)).sum().cast("float64"))
    if inputs.reference is not None:
        ref = inputs.reference
        j = counts.left_join(ref.select("kind", "value", ref_accounts=ref.accounts), ["kind", "value"],
                             rname="{name}_r")
        counts = j.select("kind", "value", ordinary=ibis.greatest(
            j.ordinary, j.ref_accounts.fill_null(0).cast("float64") * float(inputs.reference_scale)))
    return BaseRate(counts, fresh)


def _rows(t: ir.Table, kind: str, value: ir.Value) -> ir.Table:
    return t.select("account_id", kind=ibis.literal(kind), value=value.cast("string"))


def _network(x: ir.Table, hosting_asns: tuple[int, ...]) -> list[ir.Table]:
    ip = x.client_ip
    v4 = ip.re_extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", 1)
    # /48 of an IPv6 address written with its first three groups; a "::" among them gives no prefix.
    v6 = ip.re_extract(r"^([0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}):", 1)
    prefix = ibis.ifelse(ip.contains(":"), v6.lower(), v4)
    return [
        _rows(x, "ip", ip).distinct(),
        _rows(x, "prefix", prefix).distinct(),
        _rows(x, "asn", x.client_asn).distinct(),
        _rows(x.filter(x.client_asn.isin(list(hosting_asns) or [-1])), "hosting_asn", x.client_asn).distinct(),
        _rows(x, "user_agent", x.user_agent).distinct(),
        _rows(x, "tls", x.tls_fingerprint).distinct(),
    ]


def _signup(a: ir.Table) -> list[ir.Table]:
    bucket = (a.created_at.epoch_seconds() / _BURST_SECONDS).floor().cast("int64").cast("string")
    return [
        _rows(a, "payment", a.payment_fingerprint),
        _rows(a, "email_domain", a.email_domain.lower()),
        _rows(a, "signup_burst", a.signup_path.fill_null("") + "@" + bucket),
    ]


def template_counts(signals: ir.Table) -> ir.Table:
    """Exchanges (``c``) per account, template signature, template SimHash, head and tail."""
    keys = ["account_id", "template_sig", "template_simhash", "template_head", "template_tail"]
    return signals.group_by(keys).aggregate(c=signals.count())


def _content(s: ir.Table, min_share: float) -> list[ir.Table]:
    """Template evidence from ``template_counts`` rows ``s``."""
    totals = s.group_by("account_id").aggregate(n=s.c.sum())
    per_tpl = s.group_by(["account_id", "template_sig"]).aggregate(c=s.c.sum()).join(totals, "account_id")
    dominant = per_tpl.filter(per_tpl.c.cast("float64") >= min_share * per_tpl.n.cast("float64"))
    bands = []
    for b in range(_BANDS):
        band = s.mutate(band=((s.template_simhash >> (16 * b)) & 0xFFFF))
        per = band.group_by(["account_id", "band"]).aggregate(c=band.c.sum()).join(totals, "account_id")
        kept = per.filter(per.c.cast("float64") >= min_share * per.n.cast("float64"))
        bands.append(_rows(kept, "template_lsh", ibis.literal(f"{b}:") + kept.band.cast("string")))
    out = bands[0].union(*bands[1:])
    instructions = []
    # A prompt of eight words or fewer is its own head and tail ("thanks!", "continue"): a whole prompt
    # many people type, not an instruction wrapped around varied content.
    wrapped = s.filter(s.template_head != s.template_tail)
    for kind in INSTRUCTION_KINDS:
        per = wrapped.group_by(["account_id", kind]).aggregate(c=wrapped.c.sum()).join(totals, "account_id")
        recurring = per.filter((per.c >= _HEAD_MIN) & (per.c.cast("float64") >= _HEAD_SHARE * per.n.cast("float64")))
        instructions.append(_rows(recurring, kind, recurring[kind]))
    return [_rows(dominant, "template", dominant.template_sig), out, *instructions]


def _release(pivot: ir.Table) -> ir.Table:
    """Release evidence from ``features.account.release_pivot`` rows."""
    moved = pivot.filter(pivot.new_model_share_24h >= 0.5)
    return _rows(moved, "release", ibis.literal("moved within 24 h"))


def partner_values(x: ir.Table, a: ir.Table, partner: ir.Table) -> ir.Table:
    """Accounts that used a partner's indicator; the value names the indicator."""
    observed = [
        _rows(x, "ip", x.client_ip), _rows(x, "asn", x.client_asn.cast("string")),
        _rows(x, "user_agent", x.user_agent), _rows(x, "tls", x.tls_fingerprint),
        # Payment fingerprints travel hashed (see ``share.stix``).
        _rows(a, "payment", a.payment_fingerprint.hexdigest("sha256")),
    ]
    seen = observed[0].union(*observed[1:])
    hits = seen.join(partner, [seen.kind == partner.kind, seen.value == partner.value])
    return hits.select("account_id", kind=ibis.literal("partner"),
                       value=hits.kind + ":" + hits.value).distinct()
