"""Inline SVG pictures: a campaign's timeline and its account graph, and the lab's accuracy curves.

Hand-written SVG rather than a plotting library: the report must open offline
as one file, and these two pictures are a few dozen lines of markup. The graph
layout is igraph's Fruchterman-Reingold, seeded so the picture is stable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import Any

import igraph as ig

MAX_NODES = 300  # larger campaigns: the best-connected accounts are drawn


def timeline_svg(timeline: Sequence[Sequence[Any]], width: int = 640, height: int = 120) -> str:
    """Exchanges per hour as bars, with the first and last hour labelled.

    >>> "<rect" in timeline_svg([["2026-02-02T00:00Z", 5], ["2026-02-02T01:00Z", 9]])
    True
    """
    if not timeline:
        return ""
    peak = max(n for _, n in timeline) or 1
    bar = width / len(timeline)
    plot = height - 18
    bars = "".join(
        f'<rect class="bar" x="{i * bar:.2f}" y="{plot - plot * n / peak:.2f}" width="{max(bar - 0.3, 0.4):.2f}" '
        f'height="{plot * n / peak:.2f}"><title>{escape(str(h))}: {n:,} exchanges</title></rect>'
        for i, (h, n) in enumerate(timeline))
    labels = (f'<text x="0" y="{height - 4}" font-size="11">{escape(str(timeline[0][0]))}</text>'
              f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{escape(str(timeline[-1][0]))}'
              f' · peak {peak:,}/h</text>')
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="exchanges per hour">'
            f"{bars}{labels}</svg>")


def graph_svg(accounts: list[str], edges: Sequence[Sequence[Any]], *, flagged: set[str], size: int = 360) -> str:
    """The campaign's accounts (dots; red when flagged) and the links between them.

    >>> svg = graph_svg(["a", "b", "c"], [["a", "b", 1.5, ["ip"]], ["b", "c", 2.0, ["payment"]]], flagged={"a"})
    >>> svg.count("<circle"), svg.count("<line")
    (3, 2)
    """
    if not accounts:
        return ""
    degree = Counter(a for e in edges for a in e[:2])
    shown = sorted(accounts, key=lambda a: (-degree[a], a))[:MAX_NODES]
    index = {a: i for i, a in enumerate(shown)}
    kept = [e for e in edges if e[0] in index and e[1] in index]
    graph = ig.Graph(n=len(shown), edges=[(index[e[0]], index[e[1]]) for e in kept])
    coords = graph.layout_fruchterman_reingold(seed=[[(i % 17) / 17, (i // 17) / 17] for i in range(len(shown))],
                                               niter=300).coords if kept else [
        [(i % 17) / 17, (i // 17) / 17] for i in range(len(shown))]
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    pad = 12

    def scale(v: float, lo: float, hi: float) -> float:
        return pad + (size - 2 * pad) * ((v - lo) / (hi - lo) if hi > lo else 0.5)

    pos = [(scale(x, min(xs), max(xs)), scale(y, min(ys), max(ys))) for x, y in zip(xs, ys, strict=True)]
    lines = "".join(
        f'<line x1="{pos[index[s]][0]:.1f}" y1="{pos[index[s]][1]:.1f}" x2="{pos[index[t]][0]:.1f}" '
        f'y2="{pos[index[t]][1]:.1f}" stroke="#8c959f" stroke-opacity="0.5" stroke-width="{min(0.5 + w / 2, 2.5):.2f}">'
        f"<title>{escape(s)} – {escape(t)}: {escape(', '.join(k))}</title></line>"
        for s, t, w, k in kept)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{"#cf222e" if a in flagged else "#57606a"}">'
        f"<title>{escape(a)}</title></circle>" for a, (x, y) in zip(shown, pos, strict=True))
    note = (f'<text x="0" y="{size + 12}" font-size="11">{len(shown)} of {len(accounts)} accounts shown</text>'
            if len(shown) < len(accounts) else "")
    return (f'<svg width="{size}" height="{size + (16 if note else 0)}" role="img" aria-label="account graph">'
            f"{lines}{dots}{note}</svg>")


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
