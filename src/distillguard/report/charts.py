"""Inline SVG pictures: a campaign's timeline and its account graph, and the lab's accuracy curves.

Hand-written SVG rather than a plotting library: the report must open offline
as one file, and these two pictures are a few dozen lines of markup. The graph
layout is igraph's Fruchterman-Reingold, seeded so the picture is stable. Colours come from
classes the report's stylesheet defines (``bar``, ``axis``, ``release``, ``link``, ``node-*``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import igraph as ig

MAX_NODES = 300  # larger campaigns: the best-connected accounts are drawn


def timeline_svg(timeline: Sequence[Sequence[Any]], *, release: tuple[str, str] | None = None,
                 width: int = 600, height: int = 150) -> str:
    """Exchanges per hour as bars on a time axis (silent hours stay empty), days marked, and the
    model release (``(model, released_at)``) as a dashed line.

    >>> svg = timeline_svg([["2026-02-02T00:00Z", 5], ["2026-02-02T03:00Z", 9]], release=("m", "2026-02-02T01:30:00Z"))
    >>> svg.count('class="bar"'), "m released" in svg
    (2, True)
    """
    if not timeline:
        return ""
    hours = [_instant(h) for h, _ in timeline]
    known = all(h is not None for h in hours)
    start = min(h for h in hours if h is not None) if known else None
    slots = [round((h - start).total_seconds() / 3600) if h is not None and start is not None else i
             for i, h in enumerate(hours)]  # hours since the first (or the row index for odd labels)
    span = max(slots) + 1
    peak = max(n for _, n in timeline) or 1
    top, plot = 16, height - 48  # a row for the release label above, two rows of labels below
    bar, base = width / span, top + plot
    parts = [f'<rect class="bar" x="{s * bar:.2f}" y="{base - plot * n / peak:.2f}" '
             f'width="{max(bar - 0.3, 0.6):.2f}" height="{plot * n / peak:.2f}"><title>{escape(str(h))}: '
             f"{n:,} exchanges</title></rect>" for s, (h, n) in zip(slots, timeline, strict=True)]
    parts.append(f'<line x1="0" y1="{base}" x2="{width}" y2="{base}" class="axis"/>')
    if start is not None:
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= start + timedelta(hours=span):
            x = (day - start).total_seconds() / 3600 * bar
            if 0 <= x <= width - 36:
                parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" class="axis"/>'
                             f'<text x="{x:.1f}" y="{base + 15}" font-size="10">{day:%b %d}</text>')
            day += timedelta(days=1)
    first, last = escape(str(timeline[0][0])), escape(str(timeline[-1][0]))
    parts.append(f'<text x="0" y="{height - 3}" font-size="10" class="muted">hours (UTC) {first} to {last}; '
                 f"tallest bar {peak:,} exchanges</text>")
    if release is not None:
        parts.append(_release_marker(release, start, bar, width, top, plot))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="exchanges per hour">'
            + "".join(parts) + "</svg>")


def _release_marker(release: tuple[str, str], start: datetime | None, bar: float, width: int, top: int,
                    plot: int) -> str:
    """A dashed line at the release (a note when it falls outside the timeline)."""
    model, at = release
    when = _instant(at)
    if when is None or start is None:
        return ""
    x = (when - start).total_seconds() / 3600 * bar
    label = f"{escape(model)} released {when:%b %d %H:%M} UTC"
    if not 0 <= x <= width:
        return f'<text x="0" y="10" font-size="10" class="release">{label} (outside this timeline)</text>'
    anchor, dx = ("end", -3) if x > width / 2 else ("start", 3)
    return (f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + plot}" class="release" '
            f'stroke-dasharray="4 3"><title>{label}</title></line>'
            f'<text x="{x + dx:.1f}" y="10" font-size="10" text-anchor="{anchor}" class="release">{label}</text>')


def _instant(text: str) -> datetime | None:
    """``2026-02-02T00:00Z`` (or any ISO 8601 instant) as an aware datetime; None if it is not one."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


MAX_LINKS = 800  # strongest links drawn: a dense campaign of 300 accounts has tens of thousands


def graph_svg(accounts: list[str], edges: Sequence[Sequence[Any]], *, flagged: set[str],
              unusual: set[str] | None = None, size: int | None = None) -> str:
    """The campaign's accounts (labelled dots) and the links between them, with a legend.

    Red: flagged on its own score; amber: above the member bar only (``unusual``, where the
    bar is one known number); grey: the rest (below the bar, or not flagged on its own when
    the bar is unknown). A label is the part of the id that differs between members; the
    full id is the dot's tooltip. ``size``: the canvas's side (default: grows with the accounts).

    >>> svg = graph_svg(["acct-01", "acct-02", "acct-03"], [["acct-01", "acct-02", 1.5, ["ip"]],
    ...                 ["acct-02", "acct-03", 2.0, ["payment"]]], flagged={"acct-01"})
    >>> svg.count("<circle"), svg.count("<line"), svg.count('class="node-label"')
    (5, 2, 3)
    """
    if not accounts:
        return ""
    degree = Counter(a for e in edges for a in e[:2])
    shown = sorted(accounts, key=lambda a: (-degree[a], a))[:MAX_NODES]
    if size is None:  # a triangle of three accounts needs no 420-pixel canvas
        size = min(420, 160 + round(50 * math.sqrt(len(shown))))
    index = {a: i for i, a in enumerate(shown)}
    kept = [e for e in edges if e[0] in index and e[1] in index]
    drawn = sorted(kept, key=lambda e: (-e[2], e[0], e[1]))[:MAX_LINKS]
    grid = [[(i % 17) / 17, (i // 17) / 17] for i in range(len(shown))]
    graph = ig.Graph(n=len(shown), edges=[(index[e[0]], index[e[1]]) for e in kept])
    coords = graph.layout_fruchterman_reingold(seed=grid, niter=300).coords if kept else grid
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    pad, label_room = 14, 40  # room on the right for the last labels

    def _scale(v: float, lo: float, hi: float, extent: float) -> float:
        return pad + (extent - 2 * pad) * ((v - lo) / (hi - lo) if hi > lo else 0.5)

    pos = [(_scale(x, min(xs), max(xs), size - label_room), _scale(y, min(ys), max(ys), size))
           for x, y in zip(xs, ys, strict=True)]
    lines = "".join(
        f'<line x1="{pos[index[s]][0]:.1f}" y1="{pos[index[s]][1]:.1f}" x2="{pos[index[t]][0]:.1f}" '
        f'y2="{pos[index[t]][1]:.1f}" class="link" stroke-width="{min(0.5 + w / 2, 2.5):.1f}">'
        f"<title>{escape(s)} – {escape(t)}: {escape(', '.join(k))}</title></line>"
        for s, t, w, k in drawn)
    bar_known = unusual is not None
    unusual = unusual or set()
    names = _short_names(shown)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" class="{_node_class(a, flagged, unusual)}">'
        f"<title>{escape(a)}</title></circle>"
        f'<text x="{x + 6:.1f}" y="{y + 3:.1f}" class="node-label">{escape(names[a])}</text>'
        for a, (x, y) in zip(shown, pos, strict=True))
    notes = []
    if len(shown) < len(accounts):
        notes.append(f"{len(shown)} of {len(accounts)} accounts shown")
    if len(drawn) < len(kept):
        notes.append(f"the {len(drawn):,} strongest of {len(kept):,} links drawn")
    legend = _legend(shown, flagged, unusual, size, "; ".join(notes), bar_known)
    rows = len({_node_class(a, flagged, unusual) for a in shown}) + bool(notes)
    return (f'<svg width="{size}" height="{size + 16 * rows + 4}" role="img" aria-label="account graph">'
            f"{lines}{dots}{legend}</svg>")


def _node_class(account: str, flagged: set[str], unusual: set[str]) -> str:
    return "node-own" if account in flagged else "node-bar" if account in unusual else "node-member"


def _legend(shown: list[str], flagged: set[str], unusual: set[str], size: int, note: str, bar_known: bool) -> str:
    """The colours in use, one row each with its count (a colour no dot has is not listed), then ``note``."""
    counts = Counter(_node_class(a, flagged, unusual) for a in shown)
    words = {"node-own": "flagged on {its} own score", "node-bar": "above the member bar, not flagged on {its} own",
             "node-member": "below the member bar" if bar_known else "not flagged on {its} own"}
    parts, y = [], size + 12
    for cls, phrase in words.items():
        if counts[cls]:
            what = phrase.format(its="its" if counts[cls] == 1 else "their")
            parts.append(f'<circle cx="5" cy="{y - 4}" r="4.5" class="{cls}"/>'
                         f'<text x="13" y="{y}" font-size="11">{counts[cls]:,} {escape(what)}</text>')
            y += 16
    if note:
        parts.append(f'<text x="0" y="{y}" font-size="11">{escape(note)}</text>')
        y += 16
    return '<g class="legend">' + "".join(parts) + "</g>"


def _short_names(accounts: list[str]) -> dict[str, str]:
    """Each id without the prefix all of them share, keeping at least 4 characters.

    >>> _short_names(["acct-0100152", "acct-0100498"])
    {'acct-0100152': '0152', 'acct-0100498': '0498'}
    """
    if len(accounts) < 2:
        return {a: a for a in accounts}
    shared = 0
    for chars in zip(*accounts, strict=False):
        if len(set(chars)) > 1:
            break
        shared += 1
    cut = max(min(shared, min(len(a) for a in accounts) - 4), 0)
    return {a: a[cut:] for a in accounts}


PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a")


def lines_svg(series: dict[str, list[tuple[float, float]]], *, references: dict[str, float] | None = None,
              x_label: str = "", y_label: str = "", width: int = 640, height: int = 360) -> str:
    """A line chart with a 0..1 y axis: one polyline per series, dashed horizontal reference lines.

    >>> svg = lines_svg({"none": [(100, 0.2), (400, 0.6)]}, references={"teacher": 0.8}, x_label="harvested",
    ...                 y_label="accuracy")
    >>> svg.count("<polyline"), "teacher" in svg
    (1, True)
    """
    left, right, top, bottom = 56, 170, 16, 44
    xs = [x for points in series.values() for x, _ in points] or [0.0, 1.0]
    x0, x1 = 0.0, max(xs) or 1.0
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + pw * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + ph * (1 - max(0.0, min(1.0, y)))

    parts = [f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick:.2f}</text>')
    for tick in sorted({x for x in xs}):
        parts.append(f'<text x="{px(tick):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">'
                     f"{tick:,.0f}</text>")
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 f"{escape(x_label)}</text>")
    parts.append(f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + ph / 2})">{escape(y_label)}</text>')
    legend_y = top + 8
    for i, (name, value) in enumerate((references or {}).items()):
        color = "#57606a" if i == 0 else "#9a6700"
        parts.append(f'<line x1="{left}" y1="{py(value):.1f}" x2="{left + pw}" y2="{py(value):.1f}" '
                     f'stroke="{color}" stroke-dasharray="5 4"><title>{escape(name)}: {value:.3f}</title></line>')
        parts.append(f'<text x="{left + pw + 8}" y="{legend_y}" font-size="11" fill="{color}">- - '
                     f"{escape(name)} {value:.2f}</text>")
        legend_y += 16
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"><title>{escape(name)}: '
                     f"{x:,.0f} → {y:.3f}</title></circle>" for x, y in points)
        parts.append(f'<text x="{left + pw + 8}" y="{legend_y}" font-size="11" fill="{color}">── {escape(name)}</text>')
        legend_y += 16
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(y_label)} against {escape(x_label)}" font-family="sans-serif">'
            + "".join(parts) + "</svg>")
