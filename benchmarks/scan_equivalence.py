"""Does a change leave the scan's decisions alone? A digest of every output a scan writes, compared.

    python benchmarks/scan_equivalence.py --write digest.json        # before the change
    python benchmarks/scan_equivalence.py --compare digest.json      # after: lists every difference

Simulates a few scenarios (cached in ``--workdir``), scans each with a vetted reference, an
unvetted one and none, and digests the outputs that users and the gateway read: every account's
score (to 9 digits), flag, cluster and reasons; campaigns (members, policy, evidence); the policy
records; the summary's counts (times left out). A refactor that claims "behaviour must not
change" must produce the same digest; the detection benchmark then needs no re-run to prove it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from _common import workdir

from distillguard.pipeline import scan
from distillguard.sim import generate, load_scenario
from distillguard.sim.recipes import resolve
from distillguard.store import Store

CASES = (("disclosure-2026", 0.003, 1), ("hard-negatives", 1.0, 2), ("evasive", 1.0, 5), ("random-campaigns", 0.5, 4))
_VOLATILE = ("seconds", "_s", "elapsed", "started", "finished", "version", "path", "dir")


def digest_case(name: str, scale: float, seed: int, work: Path) -> dict[str, Any]:
    """Scan one scenario in the three reference modes and digest the outputs."""
    base = work / f"{name}-{seed}"
    scenario = load_scenario(name).scaled(scale)
    if not (base / "complete").exists():  # a run stopped half-way regenerates it all
        generate(scenario, base / "traffic", seed=seed)
        generate(scenario.benign_only(), base / "vetted", seed=seed + 100)
        generate(resolve(scenario, seed)[0], base / "unvetted", seed=seed + 100)
        (base / "complete").touch()
    out: dict[str, Any] = {}
    for mode, ref in (("vetted", base / "vetted"), ("unvetted", base / "unvetted"), ("none", None)):
        dest = base / f"scan-{mode}"
        (base / f"scan-{mode}.duckdb").unlink(missing_ok=True)
        with Store.open(base / f"scan-{mode}.duckdb") as store:
            scan(base / "traffic", dest, store=store, reference_dir=ref)
        out[mode] = _digest(dest)
        print(f"{name} seed {seed} {mode}: {sum(a[1] for a in out[mode]['accounts'])} flagged, "
              f"{len(out[mode]['campaigns'])} campaigns", flush=True)
    return out


def _digest(dest: Path) -> dict[str, Any]:
    accounts = pq.read_table(dest / "accounts.parquet").sort_by("account_id").to_pylist()
    return {
        "accounts": [[a["account_id"], bool(a["flagged"]), None if a["score"] is None else round(a["score"], 9),
                      a.get("cluster_id"), a.get("reasons")] for a in accounts],
        "campaigns": json.loads((dest / "campaigns.json").read_text()),
        # Expiry counts from the wall clock at the scan (the decision's time): not comparable across runs.
        "policy": [{k: v for k, v in r.items() if k != "expires_at"}
                   for r in json.loads((dest / "policy.json").read_text())],
        "summary": _stable(json.loads((dest / "summary.json").read_text())),
    }


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(t in k for t in _VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _differences(before: Any, after: Any, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = [f"{where}.{k}: only {'before' if k in before else 'after'}" for k in set(before) ^ set(after)]
        for k in sorted(set(before) & set(after)):
            out += _differences(before[k], after[k], f"{where}.{k}")
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after, strict=True))
        return [d for i, (b, a) in pairs for d in _differences(b, a, f"{where}[{i}]")]
    return [] if before == after else [f"{where}: {str(before)[:120]} -> {str(after)[:120]}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="write the digest here")
    group.add_argument("--compare", type=Path, help="compare with this digest; exit 1 on any difference")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the simulated traffic here")
    args = ap.parse_args()
    with workdir(args.workdir, "dg-equiv-") as work:
        now = {f"{n}-{seed}": digest_case(n, scale, seed, work) for n, scale, seed in CASES}
    if args.write:
        args.write.write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"wrote {args.write}")
        return
    diffs = _differences(json.loads(args.compare.read_text()), json.loads(json.dumps(now)))
    for d in diffs[:200]:
        print(d)
    print(f"{len(diffs)} differences" if diffs else "identical: every account, campaign, policy record and count")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
