"""A campaign's pictures (the report's account graph and timelines) and its strongest links, drawn once per scan.

They depend on the scan only, and drawing a large campaign's graph is most of its page's cost (950 members
and 323,000 links: 0.26 s of layout, 0.13 s to sort the links), so they are drawn once, kept, and drawn for
every campaign on a background thread as soon as a scan is loaded, largest first.
"""

from __future__ import annotations

import heapq
import logging
import threading
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from distillguard.report.charts import graph_svg, timeline_svg

log = logging.getLogger(__name__)
EDGES_SHOWN = 40


@dataclass(frozen=True)
class Pictures:
    """What a campaign page draws: the graph, the overall and per-capability timelines, the strongest links."""

    graph: Markup
    timeline: Markup
    timelines: list[tuple[str, int, Markup]]
    edges: list[Any]
    n_edges: int


class PictureCache:
    """Pictures by campaign id; ``draw(campaign_id)`` gives the picture set, drawing it on first use."""

    def __init__(self, scan: Any) -> None:
        self._scan = scan
        self._done: dict[str, Pictures] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, campaign_id: str) -> Pictures:
        with self._lock:
            done = self._done.get(campaign_id)
        if done is None:
            done = self._draw(campaign_id)
            with self._lock:
                self._done[campaign_id] = done
        return done

    def warm(self) -> threading.Thread:
        """Draw every campaign's pictures on a daemon thread, largest campaign first."""
        order = sorted(self._scan.campaigns, key=lambda c: -len(c.account_ids))

        def run() -> None:
            for c in order:
                if self._closed:
                    return
                try:
                    self.get(c.campaign_id)
                except Exception:  # a page will draw it again and show the error
                    log.exception("drawing %s", c.campaign_id)
                    return

        thread = threading.Thread(target=run, daemon=True, name="console-pictures")
        thread.start()
        return thread

    def close(self) -> None:
        self._closed = True

    def _draw(self, campaign_id: str) -> Pictures:
        scan = self._scan
        c = scan.campaign(campaign_id)
        members = scan.members(campaign_id, limit=len(c.account_ids))
        own = {m["account_id"] for m in members if m["flagged_alone"]}
        bar = scan.summary.member_threshold
        unusual = {m["account_id"] for m in members if (m["score"] or 0.0) > bar} if bar is not None else None
        release = (c.release_pivot.model, c.release_pivot.released_at) if c.release_pivot else None
        edges = c.graph.edges if c.graph else []
        return Pictures(
            graph=Markup(graph_svg(c.account_ids, edges, flagged=own, unusual=unusual)),
            timeline=Markup(timeline_svg(c.timeline, release=release)),
            timelines=[(cap, sum(n for _, n in rows), Markup(timeline_svg(rows, release=release, height=110)))
                       for cap, rows in scan.timeline_by_capability(campaign_id).items()],
            edges=heapq.nsmallest(EDGES_SHOWN, edges, key=lambda e: (-e[2], e[0], e[1])),
            n_edges=len(edges),
        )
