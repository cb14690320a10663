"""Analyst feedback the next scan uses: accounts cleared as benign (``scan --benign FILE``).

A cleared account is never set aside from the reference and is its own benign neighbour
(``scoring``): it is not flagged again for the behaviour it was cleared with, but is once
that behaviour changes. Decisions are kept in the store (``cleared_accounts``), so later
scans of the same store remember them.

The file holds one account id per line; blank lines and ``#`` comments are ignored, and
anything after the id on a line (separated by whitespace or a comma) is kept as the note.

>>> read_cleared_lines(["# cleared 2026-03-01", "acct-1  SaaS backend of example.com", "", "acct-2,eval"])
[('acct-1', 'SaaS backend of example.com'), ('acct-2', 'eval')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from distillguard.errors import InputError
from distillguard.schema import CLEARED_ACCOUNTS
from distillguard.store import Store

_SPLIT = re.compile(r"[\s,]+", re.UNICODE)


def read_cleared_lines(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(account_id, note) for each non-comment line."""
    out = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = _SPLIT.split(text, maxsplit=1)
        out.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return out


def record_cleared(store: Store, path: Path) -> int:
    """Store the accounts listed in ``path`` as cleared (replacing earlier rows from the same file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"benign accounts file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows = read_cleared_lines(text.splitlines())
    now = datetime.now(UTC)
    with store.transaction():
        store.con.execute("DELETE FROM cleared_accounts WHERE source = ?", [str(path)])
        if rows:
            store.append("cleared_accounts", pa.Table.from_pylist(
                [{"account_id": a, "cleared_at": now, "source": str(path), "note": n} for a, n in rows],
                schema=CLEARED_ACCOUNTS))
    return len(rows)


def cleared_accounts(store: Store) -> frozenset[str]:
    """Every account cleared in this store."""
    return frozenset(str(a) for a in store.read("cleared_accounts", ["account_id"]).column("account_id").to_pylist())
