"""The ``distillguard`` command line: parses, calls library functions, prints.

Library errors (``DistillGuardError``) become one red line and exit code 1.

Each command imports the library it runs inside its function, on purpose: importing the
scan, the gateway and replay together takes about 3.8 s here (DuckDB, Ibis, scikit-learn
enrichers), and ``distillguard --help`` or ``distillguard gateway`` should not pay for the
commands they do not run (nor the lab's torch, nor PySpark).
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from distillguard._cli_support import console, out
from distillguard._cli_support import errors as _errors
from distillguard._cli_support import progress as _progress
from distillguard.config import DEFAULT_DB, load_settings
from distillguard.errors import ConfigError, InputError
from distillguard.forensics.cli import forensics
from distillguard.lab.cli import lab
from distillguard.watermark.cli import watermark

app = typer.Typer(
    help="Detect, attribute and deter adversarial distillation of LLM APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
DbOpt = Annotated[Path, typer.Option("--db", help="DuckDB store file.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Settings TOML file.")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def ingest(
    traffic_dir: Annotated[Path, typer.Argument(help="Traffic directory (exchange-log spec).")],
    db: DbOpt = Path(DEFAULT_DB),
    config: ConfigOpt = None,
) -> None:
    """Ingest a traffic directory into the store; bad rows are quarantined.

    Example: distillguard ingest traffic/ --db distillguard.duckdb
    """
    from distillguard.ingest import ingest_traffic_dir
    from distillguard.store import Store

    with _errors():
        settings = load_settings(config)
        with Store.open(db) as store, _progress() as progress:
            report = ingest_traffic_dir(traffic_dir, store, settings=settings.ingest,
                                        progress=lambda n: progress("ingest", n, None))
        out.print(f"ingested {report.exchanges_added:,} new exchanges ({report.duplicates:,} already "
                  f"stored), {report.accounts:,} accounts, {report.events:,} events into {db}")
        _quarantine_note(report.quarantined, db)


@app.command()
def scan(
    traffic_dir: Annotated[Path, typer.Argument(help="Traffic directory (exchange-log spec).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the results.")],
    db: DbOpt = Path(DEFAULT_DB),
    engine: Annotated[str, typer.Option(help="duckdb or spark (needs distillguard[spark]).")] = "duckdb",
    master: Annotated[str | None, typer.Option(
        help="Where --engine spark runs: local[N] (default local[2]) or a cluster: spark://HOST:7077, yarn, "
             "k8s://URL (docs/scale.md).")] = None,
    warehouse: Annotated[str | None, typer.Option(
        help="Where --engine spark keeps the per-exchange tables as Parquet: a path every Spark node reads "
             "(default: beside --db, DB.spark/).")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="An earlier period of traffic as it was (e.g. last month): it is vetted (its campaign members "
             "and flagged accounts set aside), then detectors are fitted and thresholds set on the rest.")] = None,
    benign: Annotated[Path | None, typer.Option(
        help="File of account ids an analyst cleared (one per line, # comments): they join the reference and are "
             "not flagged again unless their behaviour changes; remembered in --db.")] = None,
    incremental: Annotated[bool, typer.Option(
        help="Read only the files --db has not read before (its ingest ledger), update its per-day aggregates and "
             "decide over --window; the outputs equal a full scan's over the same window.")] = False,
    window: Annotated[str | None, typer.Option(
        help="Only the last whole UTC days count, ending with the newest exchange's day: 30d or 720h (default: "
             "every day in the store).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Ingest, run every stage, write accounts.parquet, campaigns.json and report.html.

    Without --reference the scanned population is its own reference, vetted the same way:
    linked accounts never vouch for each other, and campaigns and flagged accounts are set
    aside before the final fit. summary.json says how many accounts were set aside and why.

    Example: distillguard scan traffic/ --out scan-out/ --reference last-month/ --benign cleared.txt

    Every hour, over a rolling month: distillguard scan logs/ --out scan-out/ --incremental --window 30d

    On a Spark cluster: distillguard scan traffic/ --out scan-out/ --engine spark --master spark://HOST:7077
    """
    from distillguard.engine import SparkOptions, check_master
    from distillguard.incremental.window import Window
    from distillguard.store import Store

    with _errors():
        settings = load_settings(config)
        days = Window.parse(window)
        if incremental and engine != "duckdb":
            raise ConfigError("--incremental keeps its aggregates in the DuckDB store: use --engine duckdb")
        if (master or warehouse) and engine != "spark":
            raise ConfigError("--master and --warehouse are settings of the Spark engine: add --engine spark")
        spark = SparkOptions(master, warehouse) if engine == "spark" else None
        if master is not None:
            check_master(master)  # a bad or unreachable master fails here, before the ingest
        with Store.open(db) as store, _progress() as progress:
            if incremental:
                from distillguard.incremental.scan import incremental_scan

                result = incremental_scan(traffic_dir, out_dir, store=store, settings=settings, window=days,
                                          progress=progress, reference_dir=reference, benign_file=benign)
            else:
                from distillguard.pipeline import scan as run_scan

                result = run_scan(traffic_dir, out_dir, store=store, settings=settings, engine_name=engine,
                                  progress=progress, reference_dir=reference, benign_file=benign, window=days,
                                  spark=spark)
        out.print(f"{result.accounts:,} accounts scanned, {result.flagged:,} flagged, "
                  f"{len(result.campaigns)} campaigns")
        _quarantine_note(result.ingest.quarantined, db)
        out.print(f"report: {result.report}")


@app.command()
def report(out_dir: Annotated[Path, typer.Argument(help="A scan output directory.")]) -> None:
    """Re-render report.html from the stored results of a scan.

    Example: distillguard report scan-out/
    """
    from distillguard.report import render_report

    with _errors():
        out.print(f"report: {render_report(out_dir)}")


@app.command("export-stix")
def export_stix(
    out_dir: Annotated[Path, typer.Argument(help="A scan output directory (its campaigns.json).")],
    dest: Annotated[Path, typer.Option("--out", help="Bundle file to write.")] = Path("bundle.json"),
    provider: Annotated[str, typer.Option(help="Your organization's name (the bundle's identity).")]
    = "distillguard user",
    tlp: Annotated[str, typer.Option(help="TLP marking: white, green, amber or red.")] = "amber",
) -> None:
    """Write the scan's campaigns as a STIX 2.1 bundle for other providers.

    Campaigns, proxy infrastructure, indicators (IPs, ASNs, user agents, TLS and
    hashed payment fingerprints) with sightings, and MITRE ATLAS attack patterns.

    Example: distillguard export-stix scan-out/ --out bundle.json --provider "Example AI" --tlp amber
    """
    from distillguard.share import export_stix as run_export

    with _errors():
        n = run_export(out_dir, dest, provider=provider, tlp=tlp)
    out.print(f"{n} STIX objects written to {dest}")


@app.command("import-stix")
def import_stix(
    bundle: Annotated[Path, typer.Argument(help="A STIX 2.1 bundle from a partner.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Store a partner's indicators; the next scan links accounts that used them.

    Importing the same file again replaces its earlier indicators.

    Example: distillguard import-stix partner-bundle.json --db distillguard.duckdb
    """
    from distillguard.share import import_stix as run_import
    from distillguard.store import Store

    with _errors(), Store.open(db) as store:
        report = run_import(bundle, store)
    out.print(f"{report.indicators} indicators read, {report.values} values stored"
              + (f", {report.skipped} comparisons skipped (not IP, ASN, user agent, TLS or payment)"
                 if report.skipped else ""))


@app.command()
def quarantine(
    db: DbOpt = Path(DEFAULT_DB),
    as_json: Annotated[bool, typer.Option("--json", help=(
        "JSON Lines: one {file, line, reason} object per line, and no output at all when nothing is quarantined "
        "(`jq -s .` makes it one array, [] when empty)."))] = False,
) -> None:
    """List quarantined input rows with file, line and reason.

    Example: distillguard quarantine --db distillguard.duckdb --json
    """
    from distillguard.store import Store

    with _errors(), Store.open(db, read_only=True) as store:
        rows = store.query("SELECT file, line, reason, kind FROM quarantine ORDER BY file, line").to_pylist()
    if as_json:
        for row in rows:
            sys.stdout.write(orjson.dumps({k: row[k] for k in ("file", "line", "reason")}).decode() + "\n")
        return
    table = Table("file", "line", "kind", "reason", title=f"{len(rows):,} quarantined rows")
    table.columns[0].overflow = "fold"  # a path is one word: fold it over lines rather than cut it with "…"
    for row in rows:
        table.add_row(row["file"], str(row["line"]), row["kind"], row["reason"])
    out.print(table)


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Traffic directory to write.")],
    scenario: Annotated[str, typer.Option(help="Built-in scenario name or a scenario TOML file.")] = "demo",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 0,
    scale: Annotated[float, typer.Option(help="Multiplies accounts and volumes.")] = 1.0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or jsonl (zstd shards).")] = "parquet",
    data_dir: Annotated[Path | None, typer.Option(help="Public prompt datasets (default: shared/data).")] = None,
    benign_only: Annotated[bool, typer.Option(help="Leave the campaigns out (reference traffic).")] = False,
    prompt_variety: Annotated[float | None, typer.Option(
        help="Share of prompts varied as real users vary them (numbers, names, remarks), so that most are "
             "distinct; default: the scenario's (0 for the built-in ones: prompts repeat).")] = None,
) -> None:
    """Write a labelled traffic directory from a scenario.

    Example: distillguard simulate --scenario disclosure-2026 --seed 1 --scale 0.001 --out traffic/
    """
    from dataclasses import replace

    from distillguard.sim import generate, load_scenario

    with _errors(), _progress() as progress:
        spec = load_scenario(scenario).scaled(scale)
        spec = spec.benign_only() if benign_only else spec
        spec = replace(spec, prompt_variety=prompt_variety) if prompt_variety is not None else spec
        stats = generate(spec, out_dir, seed=seed, fmt=fmt, data_dir=data_dir,
                         progress=lambda n, total: progress("simulate", n, total))
    out.print(f"wrote {stats.exchanges:,} exchanges from {stats.accounts:,} accounts "
              f"({stats.attack_accounts:,} attacking) to {out_dir}")


@app.command()
def bench(
    traffic_dir: Annotated[Path, typer.Argument(help="Traffic directory with labels.")],
    scan_out: Annotated[Path, typer.Argument(help="Output directory of a scan of it.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the metrics here.")] = None,
    replay_dir: Annotated[Path | None, typer.Option("--replay", help="A replay output: adds time-to-detect.")] = None,
) -> None:
    """Score a scan against the simulator's labels (ROC-AUC, PR-AUC, FPR, campaign recall, ARI).

    Example: distillguard bench traffic/ scan-out/ --json metrics.json
    """
    from distillguard.bench import evaluate, metrics_table

    with _errors():
        metrics = evaluate(traffic_dir, scan_out, replay_dir)
    out.print(metrics_table(metrics))
    if json_path:
        json_path.write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))


@app.command()
def replay(
    traffic_dir: Annotated[Path, typer.Argument(help="Traffic directory (exchange-log spec).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the replay.")],
    window: Annotated[str, typer.Option(help="Window length: 30m, 1h, 6h, 1d.")] = "1h",
    db: DbOpt = Path(DEFAULT_DB),
    reference: Annotated[Path | None, typer.Option(help="An earlier period, as it was (as for scan).")] = None,
    engine: Annotated[str, typer.Option(help="duckdb or spark (needs distillguard[spark]).")] = "duckdb",
    config: ConfigOpt = None,
) -> None:
    """Run detection window by window in time order; record when accounts are first flagged.

    Each window runs the scan's stages on the exchanges before its end: the last window is the scan.

    Example: distillguard replay traffic/ --window 1h --out replay-out/ --reference reference/
    """
    from distillguard.replay import replay as run_replay
    from distillguard.store import Store

    with _errors():
        settings = load_settings(config)
        with Store.open(db) as store, _progress() as progress:
            result = run_replay(traffic_dir, out_dir, store=store, settings=settings, window=_duration(window),
                                reference_dir=reference, engine_name=engine, progress=progress)
    out.print(f"{result.windows} windows, {result.accounts_flagged:,} accounts flagged at some point; "
              f"results in {result.out_dir}")
    _time_to_detect(result.time_to_flag, traffic_dir, result.out_dir)


def _time_to_detect(timing: dict[str, object], traffic_dir: Path, replay_dir: Path) -> None:
    """Replay's summary: how soon accounts were flagged, and each campaign's time to detect when the traffic has
    labels (the simulator's)."""
    if timing.get("accounts"):
        out.print(f"time to flag, from an account's first exchange: median {timing['median_hours']} h "
                  f"(90% within {timing['p90_hours']} h), after a median {timing['median_exchanges']} exchanges")
    labels = [traffic_dir / "labels.parquet", traffic_dir / "labels.jsonl"]
    if not any(p.is_file() for p in labels):
        return
    import pyarrow.parquet as pq

    from distillguard.bench.replay_metrics import replay_summary

    with _errors():
        try:
            rows = pq.read_table(labels[0]).to_pylist() if labels[0].is_file() else \
                [orjson.loads(line) for line in labels[1].read_bytes().splitlines() if line.strip()]
            campaign_of = {r["account_id"]: r["campaign_id"] for r in rows if r.get("is_attack")}
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ArrowInvalid and JSONDecodeError are ValueErrors
            raise InputError(f"cannot read the labels in {traffic_dir}: {exc}") from exc
        summary = replay_summary(pq.read_table(replay_dir / "replay.parquet"), campaign_of)
    if not summary["campaigns"]:
        return
    table = Table("campaign (labels)", "first flagged", "its traffic sent by then", title="Time to detect")
    for name, c in summary["campaigns"].items():
        hours = c["hours_to_detect"]
        when = "never" if c["first_flagged_at"] is None else \
            "in its first window" if not hours else f"{hours:.1f} h after its first window"
        table.add_row(name, when, "-" if c["share_before_flag"] is None else f"{c['share_before_flag']:.1%}")
    out.print(table)


def _duration(text: str) -> timedelta:
    """``30m``, ``1h``, ``1d`` → timedelta, or a ConfigError naming the value."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise ConfigError(f"--window {text!r} is not a duration like 30m, 1h or 1d") from None


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the traffic, store and report go.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Simulate the demo scenario and a benign reference, scan, print a summary and the report path.

    Example: distillguard demo --workdir demo-out
    """
    from distillguard.bench import evaluate, metrics_table
    from distillguard.pipeline import scan as run_scan
    from distillguard.sim import generate, load_scenario
    from distillguard.store import Store

    with _errors():
        traffic, scan_out, db = workdir / "traffic", workdir / "scan", workdir / "distillguard.duckdb"
        reference = workdir / "reference"
        for stale in (db, db.with_suffix(".reference.duckdb")):
            stale.unlink(missing_ok=True)
        with _progress() as progress:
            generate(load_scenario("demo"), traffic, seed=seed, fmt="jsonl",
                     progress=lambda n, total: progress("simulate", n, total))
            # Known-benign traffic from another week (another seed): the calibration reference.
            generate(load_scenario("demo").benign_only(), reference, seed=seed + 1000, fmt="jsonl",
                     progress=lambda n, total: progress("reference", n, total))
            with Store.open(db) as store:
                result = run_scan(traffic, scan_out, store=store, progress=progress, reference_dir=reference)
        metrics = evaluate(traffic, scan_out)
    summary = Table("campaign", "accounts", "exchanges", "score", "top capability", title="Campaigns found")
    for c in result.campaigns[:10]:
        top = next(iter(c["capabilities"]), "-")
        summary.add_row(c["campaign_id"], str(len(c["account_ids"])), f"{c['exchange_count']:,}",
                        f"{c['score']:.2f}", top)
    out.print(summary)
    out.print(metrics_table(metrics, brief=True))
    out.print(f"{result.accounts:,} accounts, {result.flagged:,} flagged; report: {result.report}")


@app.command()
def gateway(
    upstream: Annotated[str | None, typer.Option(help="OpenAI-compatible upstream base URL (…/v1).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    log_dir: Annotated[Path | None, typer.Option(help="Exchange log directory (default gateway-log/).")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy.json from `scan`, hot-reloaded.")] = None,
    keys_file: Annotated[Path | None, typer.Option("--keys", help="Key store (default distillguard-keys.db).")]
    = None,
    redis: Annotated[str | None, typer.Option(help="redis://host:port: limits shared by all replicas.")] = None,
    config: Annotated[Path | None, typer.Option(help="gateway.toml; flags override it.")] = None,
    log_format: Annotated[str | None, typer.Option(help="The gateway's own logs: text or json (one per line).")]
    = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes on one port (default 1); more than 1 needs --redis, which they share limits in.")]
    = None,
) -> None:
    """Run the OpenAI-compatible gateway: keys → accounts, policy, rate limits, exchange log.

    Example: distillguard gateway --upstream http://127.0.0.1:8001/v1 --policy scan-out/policy.json
    """
    with _errors():
        from distillguard._logging import configure_logging
        from distillguard.gateway.config import load_gateway_settings
        from distillguard.gateway.server import serve

        settings = load_gateway_settings(config, upstream=upstream, host=host, port=port, log_dir=log_dir,
                                         policy=policy, keys=keys_file, redis_url=redis, log_format=log_format,
                                         workers=workers)
        configure_logging(settings.log_format)
        several = f", {settings.workers} workers" if settings.workers > 1 else ""
        console.print(f"gateway on http://{settings.host}:{settings.port}/v1 → {settings.upstream}; "
                      f"log {settings.log_dir}{several}")
        serve(settings)


@app.command("console")
def console_(
    db: DbOpt = Path(DEFAULT_DB),
    scan_out: Annotated[Path, typer.Option("--scan-out", help="The scan output directory to review.")]
    = Path("scan-out"),
    policy: Annotated[Path | None, typer.Option(
        help="The policy file the gateway loads (--policy of `distillguard gateway`); decisions are written to "
             "it (default <db>.console/policy.json).")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    users: Annotated[Path | None, typer.Option(help="Users file: 'name role scrypt-hash' a line.")] = None,
    trust_header: Annotated[str | None, typer.Option(
        help="Take the user from this header set by a reverse proxy (e.g. X-Remote-User).")] = None,
    header_role: Annotated[str, typer.Option(help="Role of header users the users file does not list.")]
    = "read-only",
    state: Annotated[Path | None, typer.Option(help="The console's folder (default <db>.console/).")] = None,
    excerpt_chars: Annotated[int, typer.Option(help="Characters of each prompt and answer shown.")] = 280,
    no_text: Annotated[bool, typer.Option("--no-text", help="Show no prompt or answer text at all.")] = False,
    add_user: Annotated[str | None, typer.Option(
        help="Add this user to --users (asks for the password) and exit.")] = None,
    role: Annotated[str, typer.Option(help="With --add-user: analyst or read-only.")] = "analyst",
) -> None:
    """The analyst console: queue, campaign and account pages, decisions that reach the gateway and the next scan.

    Decisions are written to --policy: point `distillguard gateway --policy` at it.

    Cleared accounts go to <db>.console/cleared.txt (pass it to the next `scan --benign`), labels to labels.jsonl.

    Example: distillguard console --db distillguard.duckdb --scan-out scan-out/ --users users.txt
    """
    with _errors():
        from distillguard.console.auth import user_line

        if add_user is not None:
            if users is None:
                raise ConfigError("--add-user needs --users FILE")
            password = typer.prompt(f"password for {add_user}", hide_input=True, confirmation_prompt=True)
            line = user_line(add_user, role, password)
            with users.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
            out.print(f"{add_user} ({role}) added to {users}")
            return
        from distillguard.console.index import Retention
        from distillguard.console.server import run as serve_console
        from distillguard.console.state import ConsoleSettings

        settings = ConsoleSettings(db=db, scan_out=scan_out, state=state, policy=policy, users=users,
                                   trust_header=trust_header, header_role=header_role, host=host, port=port,
                                   retention=Retention(excerpt_chars=excerpt_chars, show_text=not no_text))
        console.print(f"console on http://{host}:{port}/ for {scan_out}; decisions → {settings.policy_path}, "
                      f"{settings.cleared_path}")
        serve_console(settings)


keys = typer.Typer(help="Gateway API keys (stored hashed) and the accounts they belong to.", no_args_is_help=True)
app.add_typer(keys, name="keys")
KeysOpt = Annotated[Path, typer.Option("--keys", help="Key store file (SQLite).")]
DEFAULT_KEYS = Path("distillguard-keys.db")


@keys.command("add")
def keys_add(
    account: Annotated[str, typer.Option(help="Account the key belongs to.")],
    organization: Annotated[str | None, typer.Option(help="Optional organization of the account.")] = None,
    store: KeysOpt = DEFAULT_KEYS,
) -> None:
    """Create an API key; it is printed once and stored only as a hash.

    Example: distillguard keys add --account acct-0042 --organization org-7
    """
    from distillguard.gateway.keys import KeyStore

    with _errors():
        secret, record = KeyStore(store).add(account, organization)
    out.print(f"{record.key_id} for {record.account_id}: [bold]{secret}[/] (shown once; store it now)",
              highlight=False)


@keys.command("list")
def keys_list(store: KeysOpt = DEFAULT_KEYS) -> None:
    """List keys (ids, accounts, status), never the secrets.

    Example: distillguard keys list --keys distillguard-keys.db
    """
    from distillguard.gateway.keys import KeyStore

    with _errors():
        records = KeyStore(store).list()
    table = Table("key id", "account", "organization", "created", "status", title=f"{len(records)} keys")
    for r in records:
        table.add_row(r.key_id, r.account_id, r.organization or "", r.created_at[:19],
                      f"revoked {r.revoked_at[:19]}" if r.revoked_at else "active")
    out.print(table)


@keys.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key-...).")],
                store: KeysOpt = DEFAULT_KEYS) -> None:
    """Revoke a key; running gateways refuse it from their next request on.

    Example: distillguard keys revoke key-3f2a9c1b7d4e
    """
    from distillguard.gateway.keys import KeyStore

    with _errors():
        record = KeyStore(store).revoke(key_id)
    out.print(f"{record.key_id} ({record.account_id}) revoked")


app.add_typer(lab, name="lab")
app.add_typer(watermark, name="watermark")
app.add_typer(forensics, name="forensics")


def _quarantine_note(count: int, db: Path) -> None:
    if count:
        out.print(f"[yellow]{count:,} malformed rows quarantined[/]; list them with "
                  f"`distillguard quarantine --db {db}`")
    else:
        out.print("0 rows quarantined")


if __name__ == "__main__":  # pragma: no cover
    app()
