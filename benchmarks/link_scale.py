"""Link stage at scale: one million accounts, time and memory.

    python benchmarks/link_scale.py [--accounts 1000000] [--hydra 5] [--hydra-size 20000] [--workdir DIR]

The simulator writes whole exchanges and would need hours for a million
accounts, so this benchmark writes the columns the link stage reads straight
into a store with DuckDB SQL: benign accounts on residential addresses with a
handful of exchanges each, popular user agents and TLS fingerprints, webmail
and company e-mail domains, popular and private prompt templates; plus
``--hydra`` proxy-network clusters of ``--hydra-size`` accounts (shared exit
pools, cards shared by 12 accounts, ten templates each, sent in lockstep). It
then times ``run_link`` (evidence → weighted edges → Leiden) and reports how the
hydra clusters were recovered (ARI over their accounts, benign accounts pulled in).
Target (linking issue): a million accounts link in minutes on this machine.
Writes benchmarks/results/link_scale.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import machine, peak_rss_mib, timed, workdir, write_result
from sklearn.metrics import adjusted_rand_score

from distillguard.config import Settings
from distillguard.engine import DuckDBEngine
from distillguard.pipeline import run_link
from distillguard.store import Store

DAYS = 14
START = "TIMESTAMPTZ '2026-02-02 00:00:00+00'"


def populate(store: Store, accounts: int, hydra: int, hydra_size: int) -> int:
    """Write the synthetic accounts, exchanges and signals; return the exchange count (deterministic)."""
    con = store.con
    # Non-negative BIGINT hashes (DuckDB's hash() is UBIGINT, which list indexing and intervals reject).
    con.execute("CREATE OR REPLACE TEMP MACRO h1(a) AS (hash(a) >> 1)::BIGINT")
    con.execute("CREATE OR REPLACE TEMP MACRO h2(a, b) AS (hash(a, b) >> 1)::BIGINT")
    con.execute("CREATE OR REPLACE TEMP MACRO h3(a, b, c) AS (hash(a, b, c) >> 1)::BIGINT")
    attack = hydra * hydra_size
    # One row per account: hydra accounts first (ids below hydra * hydra_size), then benign.
    con.execute(f"""
        CREATE TEMP TABLE acct AS
        SELECT i, printf('acct-%08d', i) AS account_id,
               CASE WHEN i < {attack} THEN i // {hydra_size} ELSE NULL END AS hydra,
               CASE WHEN i < {attack} THEN 3 + (h2(i, 1) % 6) ELSE 1 + (h2(i, 2) % 8) END AS n,
               -- the proxy rotates hydra accounts over random groups of about four
               CASE WHEN i < {attack} THEN (i // {hydra_size}) * 1000000 + h2(i, 99) % {hydra_size // 4} END AS grp
        FROM range({accounts}) t(i)""")
    con.execute(f"""
        INSERT INTO accounts (account_id, created_at, signup_path, tier, payment_fingerprint, email_domain)
        SELECT account_id,
               {START} - INTERVAL 1 SECOND * (h2(i, 3) % 31536000),
               'standard', 'paid',
               CASE WHEN hydra IS NOT NULL THEN printf('pm-h%d-%d', hydra, i // 12) ELSE printf('pm-%d', i) END,
               CASE WHEN h2(i, 4) % 10 < 7 THEN ['gmail.com', 'outlook.com', 'yahoo.com'][1 + h2(i, 5) % 3]
                    ELSE printf('company%d.example', h2(i, 6) % 50000) END
        FROM acct""")
    # Exchanges: hydra accounts draw exits from their network's pool of hydra_size / 3 addresses,
    # one of ten templates, at times aligned to the network's 15-minute schedule; the proxy
    # rotates accounts over random groups of about four that share exits and send together.
    con.execute(f"""
        CREATE TEMP TABLE ex AS
        SELECT a.account_id, a.hydra, a.i, k,
               CASE WHEN a.hydra IS NOT NULL
                    THEN {START} + INTERVAL 15 MINUTE * (h3(a.grp, k, 20) % {DAYS * 96})
                         + INTERVAL 1 SECOND * (h3(a.i, k, 7) % 60)
                    ELSE {START} + INTERVAL 1 SECOND * (h3(a.i, k, 8) % {DAYS * 86400}) END AS ts,
               CASE WHEN a.hydra IS NOT NULL
                    THEN printf('%d.%d.%d.%d', 100 + a.hydra, (h3(a.grp, k, 21) % {hydra_size // 3}) // 250,
                                (h3(a.grp, k, 21) % {hydra_size // 3}) % 250, 7)
                    ELSE printf('%d.%d.%d.%d', 11 + h2(a.i, 9) % 180, h2(a.i, 10) % 250, h2(a.i, 11) % 256,
                                1 + h3(a.i, k, 12) % 254) END AS ip,
               CASE WHEN a.hydra IS NOT NULL THEN 65001 + h2(a.i, k) % 2 ELSE 64600 + h2(a.i, 13) % 40 END AS asn,
               ['Mozilla/5.0 Chrome/131.0', 'Mozilla/5.0 Safari/605.1', 'openai-python/1.54.3',
                'OpenAI/NodeJS/4.71.1', 'curl/8.5.0', 'langchain-openai/0.2.9'][1 + h2(a.i, 14) % 6] AS ua,
               ['t13d1516h2_a', 't13d1517h2_b', 't13d1715h2_c', 't13d0912h2_d'][1 + h2(a.i, 15) % 4] AS tls,
               CASE WHEN a.hydra IS NOT NULL THEN printf('h%d-tpl%d', a.hydra, h3(a.grp, k, 22) % 10)
                    WHEN h3(a.i, k, 16) % 10 = 0 THEN printf('popular-%d', h3(a.i, k, 17) % 5000)
                    ELSE printf('private-%d-%d', a.i, k) END AS tpl
        FROM acct a, range(a.n) r(k)""")
    con.execute("""
        INSERT INTO exchanges (exchange_id, timestamp, account_id, client_ip, client_asn, user_agent, tls_fingerprint,
                               model)
        SELECT printf('x-%d-%d', i, k), ts, account_id, ip, asn, ua, tls, 'frontier-2' FROM ex""")
    con.execute("""
        INSERT INTO signals (exchange_id, account_id, timestamp, t_s, model, client_ip, template_sig,
                             template_simhash, capability)
        SELECT printf('x-%d-%d', i, k), account_id, ts, epoch(ts), 'frontier-2', ip, tpl, h1(tpl)::BIGINT, 'chat'
        FROM ex""")
    n = int(con.execute("SELECT count(*) FROM ex").fetchone()[0])  # type: ignore[index]
    con.execute("DROP TABLE ex")
    return n


def measure(args: argparse.Namespace, work: Path) -> None:
    result: dict[str, object] = {"accounts": args.accounts, "hydra_clusters": args.hydra,
                                 "duckdb_memory_limit": args.memory_limit,
                                 "hydra_size": args.hydra_size, **machine()}
    with Store.open(work / "link.duckdb", memory_limit=args.memory_limit) as store:
        with timed(result, "populate_s"):
            result["exchanges"] = populate(store, args.accounts, args.hydra, args.hydra_size)
        engine = DuckDBEngine(store)
        with timed(result, "link_s"):
            clusters = run_link(store, engine, settings=Settings())
        result["edges"] = store.count("account_links")
        truth = {r[0]: r[1] for r in store.con.execute("SELECT account_id, hydra FROM acct").fetchall()}
    got = {r["account_id"]: r["cluster_id"] for r in clusters.to_pylist()}
    attack = [a for a, h in truth.items() if h is not None]
    result["clusters"] = len(set(got.values()))
    result["hydra_accounts_clustered"] = sum(a in got for a in attack) / max(len(attack), 1)
    result["ari_hydra"] = round(adjusted_rand_score([truth[a] for a in attack],
                                                    [got.get(a, f"single-{a}") for a in attack]), 4)
    hydra_clusters = {got[a] for a in attack if a in got}
    result["benign_in_hydra_clusters"] = sum(1 for a, c in got.items() if c in hydra_clusters and truth[a] is None)
    result["peak_rss_mib"] = peak_rss_mib()
    rss = result["peak_rss_mib"]["self"]  # type: ignore[index]
    md = (
        "# Linking one million accounts\n\n"
        f"`python benchmarks/link_scale.py --accounts {args.accounts}` on {result['cpus']} CPUs: synthetic "
        f"accounts written straight into the store ({args.hydra} hydra clusters of {args.hydra_size:,} accounts "
        "among benign ones; see the script), then the link stage alone (evidence → weighted edges → Leiden).\n\n"
        "| accounts | exchanges | link s | edges | clusters | hydra accounts clustered | ARI (hydra) "
        "| benign in hydra clusters | peak RSS (DuckDB limit) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {args.accounts:,} | {result['exchanges']:,} | {result['link_s']} | {result['edges']:,} "
        f"| {result['clusters']:,} | {result['hydra_accounts_clustered']:.3f} | {result['ari_hydra']} "
        f"| {result['benign_in_hydra_clusters']} | {rss:.0f} MiB ({args.memory_limit}) |\n\n"
        "Target: one million accounts link in minutes on this 2-core machine.\n"
    )
    write_result("link_scale", result, md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--hydra", type=int, default=5)
    ap.add_argument("--hydra-size", type=int, default=20_000)
    ap.add_argument("--memory-limit", default="6GB", help="DuckDB memory limit (it spills beyond)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    with workdir(args.workdir, "dg-link-") as work:
        measure(args, work)


if __name__ == "__main__":
    main()
