"""A scanned store (a tenth of the demo scenario), users, and the console served on loopback by uvicorn."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from distillguard.console.app import create_app
from distillguard.console.auth import user_line
from distillguard.console.state import Console, ConsoleSettings
from distillguard.lab import loopback
from distillguard.pipeline import scan
from distillguard.store import Store

PASSWORDS = {"alice": "alice-pw-1", "rob": "rob-pw-1"}


@dataclass(frozen=True)
class Scanned:
    traffic: Path
    out: Path
    db: Path
    campaign: str
    members: tuple[str, ...]


@pytest.fixture(scope="session")
def scanned(tmp_path_factory: pytest.TempPathFactory, small_traffic: Path) -> Scanned:
    """One scan of the small demo traffic; tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("console-scan")
    with Store.open(root / "s.duckdb") as store:
        result = scan(small_traffic, root / "out", store=store)
    assert result.campaigns, "the console tests need a campaign"
    c = result.campaigns[0]
    return Scanned(small_traffic, root / "out", root / "s.duckdb", c["campaign_id"], tuple(c["account_ids"]))


@pytest.fixture
def workdir(tmp_path: Path, scanned: Scanned) -> Scanned:
    """A private copy of the scan (output and store) for a test that decides or rescans."""
    shutil.copytree(scanned.out, tmp_path / "out")
    shutil.copy(scanned.db, tmp_path / "s.duckdb")
    return Scanned(scanned.traffic, tmp_path / "out", tmp_path / "s.duckdb", scanned.campaign, scanned.members)


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.txt"
    path.write_text(f"{user_line('alice', 'analyst', PASSWORDS['alice'])}\n"
                    f"# read-only\n{user_line('rob', 'read-only', PASSWORDS['rob'])}\n")
    return path


@contextlib.contextmanager
def serving(console: Console) -> Iterator[str]:
    """The console app under uvicorn on a free loopback port, in a thread."""
    try:
        with loopback.serving(create_app(console)) as url:
            yield url
    finally:
        console.close()


@pytest.fixture
def console_url(workdir: Scanned, users_file: Path, tmp_path: Path) -> Iterator[str]:
    settings = ConsoleSettings(db=workdir.db, scan_out=workdir.out, state=tmp_path / "state", users=users_file)
    with serving(Console(settings)) as url:
        yield url


@dataclass(frozen=True)
class Helpers:
    """What tests need beside fixtures: the page's CSRF token, a logged-in client, a console server."""

    csrf_of: Any
    login: Any
    serving: Any


@pytest.fixture(scope="session")
def helpers() -> Helpers:
    return Helpers(csrf_of, login, serving)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(url: str, user: str) -> httpx.Client:
    """A client logged in as ``user``."""
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    page = client.get("/login")
    r = client.post("/login", data={"username": user, "password": PASSWORDS[user], "csrf": csrf_of(page.text),
                                    "next": "/"})
    assert r.status_code == 303, r.text
    return client
