"""One account as its page shows it, read from the store: its features against the reference's, the nearest
reference accounts, its exchanges over time and a few of them.

The reference is the vetted reference period (``<db>.reference.duckdb``, less its flagged accounts) when
the scan had one, else the scanned population less its flagged accounts and the account's own cluster (the
scan's "own reference"). Features are compared as the default scorer compares them (``detect.knn.FEATURES``;
heavy-tailed ones on a log scale, robustly scaled by the reference's median and interquartile range), so
"nearest" means what it means to the detector, though not its exact neighbour groups.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distillguard.console.index import Retention
from distillguard.detect.base import LOG_SCALED
from distillguard.detect.knn import FEATURES
from distillguard.errors import InputError, StoreError
from distillguard.store import Store

NEAREST = 5


@dataclass(frozen=True)
class Reference:
    """The reference's feature matrix (raw), ids, where it came from, and its robust scaling."""

    ids: list[str]
    clusters: list[str | None]
    raw: np.ndarray
    source: str
    centre: np.ndarray
    spread: np.ndarray

    def scaled(self, raw: np.ndarray) -> np.ndarray:
        logged = np.array(raw, dtype=float)
        for j, name in enumerate(FEATURES):
            if name in LOG_SCALED:
                logged[..., j] = np.log1p(np.clip(logged[..., j], 0, None))
        z = (logged - self.centre) / self.spread
        out: np.ndarray = np.nan_to_num(z, nan=0.0)  # a missing feature sits at the reference's centre
        return out


def _open(path: Path) -> Store:
    try:
        return Store.open(path, read_only=True)
    except StoreError as exc:
        raise InputError(f"cannot read the store {path} (is a scan writing it?): {exc}") from exc


class AccountData:
    """Reads one account's details from the store at ``store_path`` (opened read-only for each page, so that
    a scan can write it in between)."""

    def __init__(self, store_path: Path, retention: Retention) -> None:
        self.store_path = Path(store_path)
        self.retention = retention
        self._reference: dict[str, Reference] = {}
        self._lock = threading.Lock()

    def reference(self, key: str, flagged: set[str]) -> Reference:
        """The reference for scan ``key`` (built once per scan)."""
        with self._lock:
            if key not in self._reference:
                self._reference[key] = self._build_reference(flagged)
            return self._reference[key]

    def _build_reference(self, flagged: set[str]) -> Reference:
        cols = ", ".join(f"f.{c}" for c in FEATURES)
        ref_path = self.store_path.with_suffix(".reference.duckdb")
        if ref_path.is_file():
            with _open(ref_path) as ref:
                rows = ref.con.execute(
                    f"""SELECT f.account_id, NULL AS cluster_id, {cols} FROM account_features f
                        LEFT JOIN account_scores s USING (account_id)
                        WHERE NOT coalesce(s.flagged, FALSE) ORDER BY f.account_id""").fetchall()
            source = f"the reference period ({ref_path.name}), less its flagged accounts"
        else:
            with _open(self.store_path) as store:
                rows = store.con.execute(
                    f"""SELECT f.account_id, c.cluster_id, {cols} FROM account_features f
                        LEFT JOIN account_clusters c USING (account_id) ORDER BY f.account_id""").fetchall()
            rows = [r for r in rows if r[0] not in flagged]
            source = "this scan's accounts that are not flagged (the scan had no reference period)"
        raw = np.array([[np.nan if v is None else float(v) for v in r[2:]] for r in rows], dtype=float)
        raw = raw.reshape(len(rows), len(FEATURES))
        logged = raw.copy()
        for j, name in enumerate(FEATURES):
            if name in LOG_SCALED:
                logged[:, j] = np.log1p(np.clip(logged[:, j], 0, None))
        with np.errstate(all="ignore"):
            centre = np.nan_to_num(np.nanmedian(logged, axis=0)) if len(rows) else np.zeros(len(FEATURES))
            q75, q25 = (np.nanpercentile(logged, q, axis=0) if len(rows) else np.ones(len(FEATURES)) for q in (75, 25))
        spread = np.nan_to_num(q75 - q25, nan=1.0)
        spread[spread <= 1e-9] = 1.0
        return Reference([str(r[0]) for r in rows], [r[1] for r in rows], raw, source, centre, spread)

    def details(self, account_id: str, *, key: str, flagged: set[str], cluster_id: str | None) -> dict[str, Any]:
        """Features against the reference, nearest reference accounts, hourly exchanges and samples."""
        ref = self.reference(key, flagged)
        cols = ", ".join(FEATURES)
        with _open(self.store_path) as store:
            con, signals = store.con, store.signals_sql()
            row = con.execute(f"SELECT {cols} FROM account_features WHERE account_id = ?", [account_id]).fetchone()
            hours = con.execute(
                f"""SELECT strftime(date_trunc('hour', timestamp), '%Y-%m-%dT%H:%MZ') AS h, count(*)
                   FROM {signals} WHERE account_id = ? GROUP BY 1 ORDER BY 1""", [account_id]).fetchall()
            caps = con.execute(
                f"""SELECT coalesce(capability, 'unknown'), count(*) FROM {signals} WHERE account_id = ?
                   GROUP BY 1 ORDER BY 2 DESC, 1""", [account_id]).fetchall()
            cur = con.execute(
                f"""SELECT exchange_id, account_id, timestamp, model, status, CAST(NULL AS VARCHAR) AS capability,
                           {self.retention.sql('prompt_text')} AS prompt,
                           {self.retention.sql('response_text')} AS answer FROM exchanges WHERE account_id = ?
                    ORDER BY hash(exchange_id) LIMIT 8""", [account_id])
            names = [d[0] for d in cur.description or []]
            samples = sorted((dict(zip(names, r, strict=True)) for r in cur.fetchall()), key=lambda s: s["timestamp"])
        features: list[dict[str, Any]] = []
        nearest: list[dict[str, Any]] = []
        if row is not None:
            raw = np.array([np.nan if v is None else float(v) for v in row], dtype=float)
            z = ref.scaled(raw[None, :])[0]
            for j, name in enumerate(FEATURES):
                column = ref.raw[:, j]
                known = column[~np.isnan(column)]
                below = float((known < raw[j]).mean()) if len(known) and not np.isnan(raw[j]) else None
                features.append({"name": name, "value": None if np.isnan(raw[j]) else raw[j],
                                 "median": float(np.median(known)) if len(known) else None,
                                 "p05": float(np.percentile(known, 5)) if len(known) else None,
                                 "p95": float(np.percentile(known, 95)) if len(known) else None,
                                 "percentile": below, "gap": float(z[j])})
            features.sort(key=lambda f: -abs(f["gap"]))
            if len(ref.ids):
                dist = np.sqrt(((ref.scaled(ref.raw) - z) ** 2).sum(axis=1))
                # Stable over the reference's account order: accounts at the same distance (identical features,
                # common among quiet accounts) are listed the same way on every load of the page.
                eligible = [i for i in np.argsort(dist, kind="stable") if ref.ids[i] != account_id
                            and (cluster_id is None or ref.clusters[i] != cluster_id)]
                nearest = [{"account_id": ref.ids[i], "distance": float(dist[i])} for i in eligible[:NEAREST]]
        return {"features": features, "nearest": nearest, "reference_source": ref.source,
                "reference_in_scan": not self.store_path.with_suffix(".reference.duckdb").is_file(),
                "reference_size": len(ref.ids), "hours": [(h, int(n)) for h, n in hours],
                "capabilities": [(c, int(n)) for c, n in caps], "samples": samples}
