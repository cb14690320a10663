"""The console over real HTTP on loopback: login, CSRF, roles, bad input, and what decisions write."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from tests.console.conftest import Scanned, csrf_of, login, serving

from distillguard.bench.evaluate import evaluate
from distillguard.console.index import Retention
from distillguard.console.state import Console, ConsoleSettings
from distillguard.feedback import read_cleared_lines
from distillguard.gateway.policy import Policy


def _decide(client: httpx.Client, page: str, **form: str) -> httpx.Response:
    csrf = csrf_of(client.get(page).text)
    return client.post("/decide", data={"csrf": csrf, **form})


def test_pages_need_a_login_and_a_wrong_password_is_refused(console_url: str) -> None:
    anonymous = httpx.Client(base_url=console_url)
    r = anonymous.get("/campaign/x")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    page = anonymous.get("/login")
    r = anonymous.post("/login", data={"username": "alice", "password": "nope", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "wrong password" in r.text
    r = anonymous.post("/login", data={"username": "alice", "password": "alice-pw-1", "csrf": "forged"})
    assert r.status_code == 403
    assert anonymous.post("/decide", data={}).status_code == 403


def test_queue_campaign_account_and_audit_pages(console_url: str, workdir: Scanned) -> None:
    client = login(console_url, "alice")
    queue = client.get("/")
    assert queue.status_code == 200 and workdir.campaign in queue.text
    assert "content-security-policy" in queue.headers
    page = client.get(f"/campaign/{workdir.campaign}")
    assert page.status_code == 200
    for part in ('aria-label="account graph"', 'aria-label="exchanges per hour"', "Shared infrastructure",
                 "Who shares what", "Sample exchanges", "Export as STIX 2.1", workdir.members[0]):
        assert part in page.text, part
    bundle = client.get(f"/campaign/{workdir.campaign}/stix.json")
    assert bundle.status_code == 200 and bundle.json()["type"] == "bundle"
    account = client.get(f"/account/{workdir.members[0]}")
    assert account.status_code == 200
    for part in ("Features against the reference", "Nearest reference accounts", "Exchanges over time",
                 "The gateway's decision for this account"):
        assert part in account.text, part
    assert client.get("/audit").status_code == 200


@pytest.mark.parametrize(("query", "field"), [("page=abc", "page"), ("age=5", "age"), ("status=lost", "status"),
                                              ("page=999", "page")])
def test_bad_queue_filters_are_a_400_naming_the_field(console_url: str, query: str, field: str) -> None:
    r = login(console_url, "alice").get(f"/?{query}")
    assert r.status_code == 400 and f"{field}:" in r.text


def test_unknown_subjects_are_404(console_url: str) -> None:
    client = login(console_url, "alice")
    assert client.get("/campaign/campaign-9999").status_code == 404
    assert client.get("/account/nobody").status_code == 404
    assert client.get("/campaign/campaign-9999/stix.json").status_code == 404


def test_every_decision_needs_the_sessions_csrf_token(console_url: str, workdir: Scanned) -> None:
    client = login(console_url, "alice")
    form = {"subject_kind": "campaign", "subject_id": workdir.campaign, "kind": "escalate", "note": "x"}
    assert client.post("/decide", data=form).status_code == 403
    assert client.post("/decide", data={**form, "csrf": "forged"}).status_code == 403
    other = login(console_url, "alice")  # another session's token is not this one's
    assert client.post("/decide", data={**form, "csrf": csrf_of(other.get("/").text)}).status_code == 403
    assert "0 decisions" in client.get("/audit").text


def test_read_only_users_see_no_forms_and_cannot_decide(console_url: str, workdir: Scanned) -> None:
    client = login(console_url, "rob")
    page = client.get(f"/campaign/{workdir.campaign}")
    assert "read-only user" in page.text and 'value="confirm"' not in page.text
    r = client.post("/decide", data={"csrf": csrf_of(page.text), "subject_kind": "campaign",
                                     "subject_id": workdir.campaign, "kind": "escalate", "note": "x"})
    assert r.status_code == 403 and "read-only" in r.text


@pytest.mark.parametrize(("form", "field"), [
    ({"kind": "confirm", "enforcement": "tarpit", "expires_days": "7"}, "enforcement"),
    ({"kind": "confirm", "enforcement": "block", "expires_days": "soon"}, "expiry"),
    ({"kind": "confirm", "enforcement": "block", "expires_days": "0"}, "expiry"),
    ({"kind": "confirm", "enforcement": "block", "expires_days": "400"}, "expiry"),
    ({"kind": "dismiss", "note": "  "}, "note"),
    ({"kind": "overrule"}, "decision"),
    ({"kind": "undo", "undoes": "77"}, "undo"),
    ({"kind": "escalate", "subject_id": "campaign-9999"}, "subject id"),
    ({"kind": "escalate", "subject_kind": "cluster"}, "subject"),
])
def test_bad_decisions_are_a_400_naming_the_field(console_url: str, workdir: Scanned, form: dict[str, str],
                                                  field: str) -> None:
    client = login(console_url, "alice")
    r = _decide(client, f"/campaign/{workdir.campaign}",
                **{"subject_kind": "campaign", "subject_id": workdir.campaign, **form})
    assert r.status_code == 400 and f"{field}:" in r.text, r.text


def test_decisions_reach_the_policy_the_next_scan_and_the_labels_and_undo_is_a_decision(
        console_url: str, workdir: Scanned, tmp_path: Path) -> None:
    state = tmp_path / "state"
    policy = Policy(state / "policy.json", check_every=0)
    member, other = workdir.members[0], workdir.members[1]
    assert policy.decide(member).action == "challenge"  # the scan's own decision, before any
    client = login(console_url, "alice")
    r = _decide(client, f"/campaign/{workdir.campaign}", subject_kind="campaign", subject_id=workdir.campaign,
                kind="confirm", enforcement="block", expires_days="30", note="harvests tool use")
    assert r.status_code == 303
    assert policy.decide(member).action == "block" and "confirmed by alice" in (policy.decide(member).reason or "")
    r = _decide(client, f"/account/{other}", subject_kind="account", subject_id=other, kind="dismiss",
                note="our own eval harness")
    assert r.status_code == 303 and r.headers["location"] == f"/account/{other}?done=2"
    assert policy.decide(other).action == "allow" and policy.decide(member).action == "block"
    assert [a for a, _ in read_cleared_lines((state / "cleared.txt").read_text().splitlines())] == [other]
    labels = {row["account_id"]: row for row in map(json.loads, (state / "labels.jsonl").read_text().splitlines())}
    assert labels[member]["is_attack"] and labels[member]["campaign_id"] == workdir.campaign
    assert labels[other]["is_attack"] is False and labels[other]["decided_by"] == "alice"
    labelled = tmp_path / "labelled"  # bench reads them as a traffic directory's labels
    labelled.mkdir()
    (labelled / "labels.jsonl").write_bytes((state / "labels.jsonl").read_bytes())
    metrics = evaluate(labelled, workdir.out)
    assert metrics["accounts"] == len(workdir.members) and metrics["attack_accounts"] == len(workdir.members) - 1
    page = client.get(f"/account/{other}")
    assert "dismissed" in page.text and "Undo #2" in page.text
    r = _decide(client, f"/account/{other}", subject_kind="account", subject_id=other, kind="undo", undoes="2")
    assert r.status_code == 303
    assert policy.decide(other).action == "block"  # back in the confirmed campaign
    assert read_cleared_lines((state / "cleared.txt").read_text().splitlines()) == []
    audit = client.get("/audit").text
    assert "3 decisions" in audit and "undo of #2" in audit
    queue = client.get("/?status=confirmed")
    assert workdir.campaign in queue.text
    assert workdir.campaign not in client.get("/?status=open").text


def test_an_identity_header_from_a_reverse_proxy(workdir: Scanned, users_file: Path, tmp_path: Path) -> None:
    settings = ConsoleSettings(db=workdir.db, scan_out=workdir.out, state=tmp_path / "state", users=users_file,
                               trust_header="X-Remote-User")
    with serving(Console(settings)) as url:
        assert httpx.get(f"{url}/").status_code == 401
        viewer = httpx.Client(base_url=url, headers={"X-Remote-User": "carol"})
        page = viewer.get(f"/campaign/{workdir.campaign}")
        assert page.status_code == 200 and "carol (read-only)" in page.text
        analyst = httpx.Client(base_url=url, headers={"X-Remote-User": "alice"})  # the users file gives the role
        r = _decide(analyst, f"/campaign/{workdir.campaign}", subject_kind="campaign", subject_id=workdir.campaign,
                    kind="escalate", note="to the abuse team")
        assert r.status_code == 303


def test_the_queue_pages_through_flagged_accounts(workdir: Scanned, users_file: Path, tmp_path: Path) -> None:
    settings = ConsoleSettings(db=workdir.db, scan_out=workdir.out, state=tmp_path / "state", users=users_file,
                               page_size=1)
    console = Console(settings)
    try:
        scan = console.scan()
        from distillguard.console.scan_data import Filters

        rows, total = scan.queue_accounts(Filters(), {}, page=0, page_size=1)
        assert len(rows) <= 1 and total == scan.counts()["outside"]
        assert scan.counts()["flagged"] >= len(workdir.members)
    finally:
        console.close()


def test_the_console_listens_on_loopback_by_default(workdir: Scanned) -> None:
    assert ConsoleSettings(db=workdir.db, scan_out=workdir.out).host == "127.0.0.1"


def test_pages_work_while_a_scan_holds_the_store(console_url: str, workdir: Scanned) -> None:
    """Another process holding the store's write lock (as a running scan does): the queue and campaign pages
    read only the scan output and the index; the account page says the store is busy."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(60)", str(workdir.db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        client = login(console_url, "alice")
        assert client.get("/").status_code == 200
        assert client.get(f"/campaign/{workdir.campaign}").status_code == 200
        page = client.get(f"/account/{workdir.members[0]}")
        assert page.status_code == 200 and "is a scan writing it?" in page.text
        assert "The gateway's decision for this account" in page.text
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("retention", [Retention(excerpt_chars=20), Retention(show_text=False)])
def test_sample_exchanges_keep_to_the_retention_settings(workdir: Scanned, users_file: Path, tmp_path: Path,
                                                         retention: Retention) -> None:
    settings = ConsoleSettings(db=workdir.db, scan_out=workdir.out, state=tmp_path / "state", users=users_file,
                               retention=retention)
    with serving(Console(settings)) as url:
        client = login(url, "alice")
        for page in (f"/campaign/{workdir.campaign}", f"/account/{workdir.members[0]}"):
            excerpts = [html.unescape(e) for e in re.findall(r'<pre class="excerpt">(.*?)</pre>', client.get(page).text,
                                                              flags=re.S) if not e.startswith("(redacted")]
            if retention.show_text:
                assert excerpts and max(len(e) for e in excerpts) <= 20
            else:
                assert excerpts == []
        stored = pq.read_table(next((tmp_path / "state" / "index").glob("*/samples.parquet")))
        lengths = [len(t) for t in stored.column("prompt").to_pylist() + stored.column("answer").to_pylist() if t]
        assert (max(lengths) <= 20) if retention.show_text else lengths == []


def test_after_a_spark_scan_the_signals_are_read_from_its_warehouse(workdir: Scanned, tmp_path: Path) -> None:
    """A Spark scan leaves the signals in its warehouse (Parquet) and the store's table empty: the console's
    timelines and samples come from there, the same as from the table."""
    from distillguard.console.index import build_index
    from distillguard.errors import StoreError
    from distillguard.records import Campaign, read_json_list
    from distillguard.store import Store

    campaigns = read_json_list(workdir.out / "campaigns.json", Campaign)
    build_index(workdir.db, workdir.out, campaigns=campaigns, dest=tmp_path / "from-table", retention=Retention())
    warehouse = tmp_path / "run[1]'s" / "signals"  # no glob, and quoted
    warehouse.mkdir(parents=True)
    with Store.open(workdir.db) as store:
        quoted = str(warehouse).replace("'", "''")
        store.con.execute(f"COPY signals TO '{quoted}' (FORMAT parquet, PER_THREAD_OUTPUT true)")
        store.con.execute("DELETE FROM signals")
        store.keep_signals_at(str(warehouse))
    build_index(workdir.db, workdir.out, campaigns=campaigns, dest=tmp_path / "from-warehouse", retention=Retention())
    for name in ("timeline", "samples", "accounts"):
        table, warehoused = (pq.read_table(tmp_path / d / f"{name}.parquet") for d in ("from-table", "from-warehouse"))
        assert table.num_rows > 0 and table.to_pylist() == warehoused.to_pylist(), name
    with Store.open(workdir.db) as store:
        store.keep_signals_at("s3a://bucket/warehouse/signals")
        with pytest.raises(StoreError, match="Spark warehouse this machine cannot read"):
            store.signals_sql()
