"""The report in a real browser (Debian's Chromium through Playwright): it loads cleanly, its
contents links land on sections, its pictures are labelled and laid out, and screenshots are
kept under ``test-artifacts/screenshots/`` for a person to look at.

Skipped where Chromium is not at ``/usr/bin/chromium`` (``apt-get install chromium``) or
Playwright is not installed (the ``dev`` extra); Playwright's own browser download is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def page(report_out: Path) -> Iterator[tuple[Any, list[str]]]:
    """The report open in Chromium at 1280×900, and the console errors it logged."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto((report_out / "report.html").as_uri())
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=SHOTS / "report-top.png")
        yield tab, errors
        browser.close()


def test_no_console_errors(page: tuple[Any, list[str]]) -> None:
    tab, errors = page
    assert tab.title() == "distillguard scan report"
    assert errors == []


def test_contents_links_land_on_their_sections(page: tuple[Any, list[str]]) -> None:
    tab, _ = page
    targets = tab.eval_on_selector_all("nav.toc a", "links => links.map(a => a.getAttribute('href'))")
    assert len(targets) >= 6
    for href in targets:
        assert href.startswith("#")
        tab.click(f"nav.toc a[href='{href}']")
        top = tab.evaluate(f"document.getElementById('{href[1:]}').getBoundingClientRect().top")
        assert abs(top) < 2, f"{href} is {top}px from the top of the window"
    tab.evaluate("window.scrollTo(0, 0)")


def test_graph_nodes_are_labelled_and_the_pictures_sit_side_by_side(page: tuple[Any, list[str]]) -> None:
    tab, _ = page
    campaign = tab.locator("section.campaign").first
    dots = campaign.locator("svg[aria-label='account graph'] > circle")  # the legend's are in a group
    labels = campaign.locator("svg[aria-label='account graph'] .node-label")
    assert labels.count() == dots.count() > 0
    assert all(t.strip() for t in labels.all_text_contents())
    timeline, graph = (campaign.locator(f"svg[aria-label='{a}']").bounding_box()
                       for a in ("exchanges per hour", "account graph"))
    assert timeline is not None and graph is not None and graph["x"] > timeline["x"] + timeline["width"]
    campaign.screenshot(path=SHOTS / "report-campaign.png")


def test_ids_stay_on_one_line_and_nothing_overflows(page: tuple[Any, list[str]]) -> None:
    tab, _ = page
    tab.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    # A wrapped id has more than one line box: count the rectangles of its text.
    lines = tab.eval_on_selector_all(".id, .nowrap", """els => els.filter(e => e.offsetParent !== null).map(e => {
        const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; })""")
    assert lines and max(lines) == 1
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for section in ("what-to-do", "how-flagged", "flagged-accounts", "cleared", "near-misses"):
        tab.locator(f"#{section}").screenshot(path=SHOTS / f"report-{section}.png")
