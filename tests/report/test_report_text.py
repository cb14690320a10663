"""The report says what to do, states the real flag rule and each account's reason, and fills its text (#21)."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distillguard.records import Campaign, PolicyRecord, ScanSummary, read_json, read_json_list
from distillguard.report import render_report
from distillguard.report.guidance import tier


class _Text(HTMLParser):
    """The page's visible text, without style and script, and the ids and anchors it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.own: list[str] = []  # the text the report writes itself (not the campaigns' evidence sentences)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._skip = 0
        self._evidence = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag == "ul" and (a.get("class") == "evidence" or self._evidence):
            self._evidence += 1
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.links.append(str(a["href"])[1:])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag == "ul" and self._evidence:
            self._evidence -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)
            if not self._evidence:
                self.own.append(data)


@pytest.fixture(scope="module")
def page(report_out: Path) -> _Text:
    parser = _Text()
    parser.feed((report_out / "report.html").read_text())
    return parser


def _text(page: _Text) -> str:
    return re.sub(r"\s+", " ", " ".join(page.parts))


def test_each_campaign_shows_its_action_expiry_tier_and_next_step(report_out: Path, page: _Text) -> None:
    html = (report_out / "report.html").read_text()
    text = _text(page)
    policy = {p.subject: p for p in read_json_list(report_out / "policy.json", PolicyRecord)}
    for c in read_json_list(report_out / "campaigns.json", Campaign):
        decision = policy[f"cluster:{c.cluster_id}"]
        block = html[html.index(f'id="{c.campaign_id}"'):]
        block = block[:block.index("</section>")]
        assert f"<b>{decision.action}</b>" in block
        assert decision.expires_at is not None and decision.expires_at.strftime("%Y-%m-%d %H:%M UTC") in block
        assert f"{tier(c.score).name} confidence" in block and "Next step:" in block
    assert "distillguard export-stix" in text and "policy.json" in text


def test_tiers_tell_a_weak_campaign_from_a_strong_one() -> None:
    assert [tier(s).name for s in (0.96, 0.81, 0.7, 0.53)] == ["high", "high", "medium", "low"]


def test_the_rule_stated_is_the_rule_applied(report_out: Path, page: _Text) -> None:
    """Flagged on its own exactly when the score is above the stated threshold (with enough exchanges);
    everyone else flagged is a campaign member; every account says which, or why not."""
    summary = read_json(report_out / "summary.json", ScanSummary)
    rows = pq.read_table(report_out / "accounts.parquet").to_pylist()
    members = {a for c in read_json_list(report_out / "campaigns.json", Campaign) for a in c.account_ids}
    assert summary.threshold is not None and summary.member_threshold is not None  # no reference: one scale
    text = _text(page)
    assert f"flag threshold {summary.threshold:.2f}" in text
    assert f"member bar, score {summary.member_threshold:.2f}" in text
    for r in rows:
        assert r["flagged"] == (r["flagged_alone"] or r["account_id"] in members)
        if r["flagged_alone"]:
            assert r["flag_reason"].startswith("flagged on its own")
            # Above the threshold, or above the member bar as a trace harvester (its reason says which).
            assert r["score"] > summary.threshold or (
                r["score"] > summary.member_threshold and "harvest evidence" in r["flag_reason"])
        elif r["account_id"] in members:
            assert r["flag_reason"].startswith("flagged as a member of campaign-")
        else:
            assert r["flag_reason"].startswith("not flagged: ")
            if r["score"] > summary.threshold:
                assert "too few to flag" in r["flag_reason"]
            else:
                assert re.search(r"(not above the flag threshold|equal to the flag threshold, not above it)",
                                 r["flag_reason"])
            if r["cluster_id"] is not None:
                assert f"its {r['cluster_id']} (" in r["flag_reason"]


def test_unflagged_accounts_above_the_member_bar_say_so(report_out: Path) -> None:
    summary = read_json(report_out / "summary.json", ScanSummary)
    assert summary.member_threshold is not None
    for r in pq.read_table(report_out / "accounts.parquet").to_pylist():
        if not r["flagged"] and r["score"] <= (summary.threshold or 0):
            above = r["score"] > summary.member_threshold
            assert ("(above the member bar" in r["flag_reason"]) == above, r


def test_no_unfilled_numbers_and_plurals_agree(page: _Text) -> None:
    text = _text(page)
    assert not re.search(r"\bN\b", text), re.findall(r".{40}\bN\b.{20}", text)
    # The campaigns' evidence sentences are decide.campaign_records' (not checked here).
    own = re.sub(r"\s+", " ", " ".join(page.own))
    singular_plural = re.compile(r"(?<![\d.,])1 (accounts|linked accounts|links|exchanges|members|smaller clusters)\b")
    assert not singular_plural.search(own), singular_plural.findall(own)
    assert re.search(r"\(1 account\)|\b1 linked account\b|\b1 member\b", own)  # the small demo has singulars


def test_reasons_lead_with_the_direction_their_numbers_show(report_out: Path) -> None:
    """'moved to a new model (60% ... vs about 95%)' would contradict itself: the words follow the numbers."""
    pattern = re.compile(r"^(.+?) \((.+?) vs about (.+?) for .+?; [\d.]+ scale units (higher|lower)\)$")
    seen = 0
    for r in pq.read_table(report_out / "accounts.parquet").to_pylist():
        for reason in r["reasons"] or []:
            m = pattern.match(reason)
            if not m or reason.startswith("member of "):
                continue
            value, typical = (_number(x) for x in (m.group(2), m.group(3)))
            if value is not None and typical is not None and value != typical:
                assert (value > typical) == (m.group(4) == "higher"), reason
                seen += 1
            assert not re.search(r"\d", m.group(1)), reason  # numbers stay in brackets
    assert seen > 10


def _number(text: str) -> float | None:
    found = re.findall(r"-?\d[\d,]*\.?\d*", text)
    return float(found[-1].replace(",", "")) if found else None


def test_report_has_a_contents_list_whose_links_resolve(page: _Text) -> None:
    assert {"what-to-do", "how-flagged", "campaigns", "flagged-accounts", "cleared", "near-misses"} <= set(page.links)
    assert set(page.links) <= page.ids


def test_pictures_label_nodes_and_mark_the_release(report_out: Path) -> None:
    html = (report_out / "report.html").read_text()
    campaigns = read_json_list(report_out / "campaigns.json", Campaign)
    assert html.count('class="node-label"') == sum(min(len(c.account_ids), 300) for c in campaigns)
    for c in campaigns:
        if c.release_pivot is not None:
            assert f"{c.release_pivot.model} released" in html
    assert any(c.release_pivot for c in campaigns)


def test_ids_do_not_wrap_and_payment_rows_say_why_they_have_no_count(report_out: Path) -> None:
    html = (report_out / "report.html").read_text()
    assert re.search(r"\.id \{[^}]*white-space: nowrap", html)
    campaigns = read_json_list(report_out / "campaigns.json", Campaign)
    for c in campaigns:
        first = c.account_ids[0]
        assert f'<td class="id">{first}</td>' in html or f'<span class="id">{first}</span>' in html
    if any(i.kind == "payment" for c in campaigns for i in c.infrastructure):
        assert "Payment fingerprints belong to accounts, not to exchanges" in " ".join(html.split())


def test_benign_groups_that_were_looked_at_are_listed_with_why_not(report_out: Path, small_traffic: Path) -> None:
    labels = {json.loads(x)["account_id"]: json.loads(x) for x in (small_traffic / "labels.jsonl").read_text().split()}
    rows = pq.read_table(report_out / "accounts.parquet").to_pylist()
    members = {a for c in read_json_list(report_out / "campaigns.json", Campaign) for a in c.account_ids}
    benign = {r["cluster_id"] for r in rows if r["cluster_id"] and r["account_id"] not in members
              and not labels[r["account_id"]]["is_attack"]}
    assert benign, "the small demo has linked benign accounts"
    html = (report_out / "report.html").read_text()
    section = html[html.index('id="cleared"'):html.index('id="near-misses"')]
    for cluster in benign:
        assert f'<td class="id">{cluster}</td>' in section
    assert section.count("campaigns need") + section.count("member bar") >= len(benign)


def test_outputs_without_the_new_columns_still_render(report_out: Path, tmp_path: Path) -> None:
    old = Path(shutil.copytree(report_out, tmp_path / "old"))
    table = pq.read_table(old / "accounts.parquet")
    pq.write_table(table.select(["account_id", "score", "flagged", "cluster_id", "reasons"]), old / "accounts.parquet")
    (old / "policy.json").unlink()
    summary = json.loads((old / "summary.json").read_text())
    del summary["settings"]
    (old / "summary.json").write_text(json.dumps(summary))
    text = " ".join(render_report(old).read_text().split())
    assert "no policy.json next to this report" in text and "not flagged: score" in text
    assert "default settings, which --config may change" in text and "(detect.min_exchanges, by default)" in text


def test_the_rule_states_the_settings_the_scan_ran_with(report_out: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(report_out, tmp_path / "custom"))
    summary = json.loads((out / "summary.json").read_text())
    summary["settings"]["link"]["min_campaign_accounts"] = 7
    summary["settings"]["detect"]["min_exchanges"] = 9
    (out / "summary.json").write_text(json.dumps(summary))
    text = " ".join(render_report(out).read_text().split())
    assert "A cluster needs 7 or more accounts" in text and "at least 9 exchanges (detect.min_exchanges)" in text
    assert "the settings this scan ran with" in text
