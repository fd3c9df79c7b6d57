"""`brandloop`: serve the API, migrate, and administer tenants and keys.

Every command talks to the configured database, or to the embedded one in the data folder
(joining it when `make serve` already runs it).
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from dateutil.relativedelta import relativedelta
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop import demo
from brandloop.app import create_app
from brandloop.auth import service as auth
from brandloop.auth.jwt import DevTokenIssuer
from brandloop.auth.models import ApiKey
from brandloop.auth.permissions import Role
from brandloop.connections import service as connections
from brandloop.connections.vault import vault
from brandloop.customers import segments
from brandloop.db import migrate as migrations
from brandloop.db.engine import create_engine, resolve_url
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.errors import InvalidInput
from brandloop.graphql.schema import sdl
from brandloop.jobs import worker as jobs
from brandloop.kpis import rollup
from brandloop.kpis import service as kpis
from brandloop.observability import configure_logging
from brandloop.orders import importer
from brandloop.settings import Settings, get_settings
from brandloop.tenancy import service as tenancy
from brandloop.tenancy.models import Tenant

app = typer.Typer(
    help="Brandloop: customers, loyalty, NPS, conflicts and KPIs for brands.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
segments_app = typer.Typer(help="Customer segmentation.", no_args_is_help=True)
loyalty_app = typer.Typer(
    help="Loyalty jobs (idempotent: safe to run from cron, and twice).", no_args_is_help=True
)
nps_app = typer.Typer(
    help="Survey jobs (idempotent: safe to run from cron, and twice).", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(schema_app, name="schema")
app.add_typer(import_app, name="import")
app.add_typer(segments_app, name="segments")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(nps_app, name="nps")
connections_app = typer.Typer(help="Channel connections.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")
kpis_app = typer.Typer(help="KPI roll-ups.", no_args_is_help=True)
app.add_typer(kpis_app, name="kpis")

# Piped output (grep, scripts) must not wrap table rows: be wide when not on a terminal.
console = Console(width=None if sys.stdout.isatty() else 200)
MAX_REJECTS_SHOWN = 20
CLI_ACTOR = f"cli:{getpass.getuser()}"
MIGRATION_WAIT = 600.0
T = TypeVar("T")


def _with_engine(work: Callable[[AsyncEngine], Awaitable[T]], settings: Settings | None = None) -> T:
    settings = settings or get_settings()

    async def run() -> T:
        engine = create_engine(resolve_url(settings), pool_size=2)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except InvalidInput as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


async def _tenant(engine: AsyncEngine, slug: str) -> Tenant:
    async with platform_transaction(engine) as session:
        tenant = await tenancy.find_tenant(session, slug)
    if tenant is None:
        console.print(f"[red]No tenant is called {slug!r}; see `brandloop tenant list`.[/red]")
        raise typer.Exit(2)
    return tenant


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Defaults to BRANDLOOP_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to BRANDLOOP_PORT.")] = None,
) -> None:
    """Serve the API. Outside production it migrates and creates the demo tenant on first run; in
    production it waits (up to 10 minutes) for `brandloop migrate` to have brought the schema to
    this code's revision, and never migrates itself."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    settings = settings.model_copy(update={"database_url": resolve_url(settings)})
    host, port = host or settings.host, port or settings.port

    key = None if settings.production else demo.saved_key(settings.data_dir)

    async def prepare(engine: AsyncEngine) -> str | None:
        if settings.production:
            try:
                async with asyncio.timeout(MIGRATION_WAIT):
                    await migrations.wait_for_head(engine)
            except TimeoutError:
                raise SystemExit(
                    f"Not serving: the database is not at revision {migrations.head_revision()} after "
                    f"{MIGRATION_WAIT:.0f} s. Run `brandloop migrate` first."
                ) from None
            return None
        await migrations.upgrade(engine)
        return None if key else await demo.create_demo(engine)

    created = _with_engine(prepare, settings)
    if created is not None:
        key = demo.save_key(settings.data_dir, created)
    print(f"GraphQL: http://{host}:{port}/graphql", flush=True)
    if key is not None:
        print(f"API key: {key}", flush=True)
        print(
            f"Try: curl -s http://{host}:{port}/graphql -H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            """-d '{"query": "{ customers(first: 5) { totalCount edges { node { displayName email } } } }"}'""",
            flush=True,
        )
    # With the embedded database (one laptop), the API process runs the job worker too.
    in_process = get_settings().database_url is None if settings.worker is None else settings.worker
    uvicorn.run(
        create_app(settings, worker=in_process), host=host, port=port, log_config=None, proxy_headers=True
    )


@app.command()
def worker() -> None:
    """Run background jobs and their schedules until interrupted; run as many as you like."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    url = resolve_url(settings)

    async def work() -> None:
        engine = create_engine(url, pool_size=2)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        try:
            await jobs.run(engine, settings, url, stop)
        finally:
            await engine.dispose()

    console.print("Worker running; Ctrl-C stops it after the jobs in hand.")
    asyncio.run(work())


@app.command()
def migrate() -> None:
    """Apply every pending migration."""
    _with_engine(migrations.upgrade)
    console.print(f"Database at revision {migrations.head_revision()}.")


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo tenant with sample customers (once) and print its API key."""
    settings = get_settings()
    key = demo.saved_key(settings.data_dir) or demo.save_key(
        settings.data_dir, _with_engine(demo.create_demo, settings)
    )
    print(f"API key: {key}")


@tenant_app.command("create")
def tenant_create(slug: str, name: Annotated[str, typer.Option(help="The brand's display name.")]) -> None:
    """Create a tenant."""

    async def work(engine: AsyncEngine) -> Tenant:
        async with platform_transaction(engine) as session:
            return await tenancy.create_tenant(session, slug=slug, name=name)

    tenant = _with_engine(work)
    console.print(f"Tenant {tenant.slug} created with id {tenant.id}.")


@tenant_app.command("list")
def tenant_list() -> None:
    """List every tenant."""

    async def work(engine: AsyncEngine) -> list[Tenant]:
        async with platform_transaction(engine) as session:
            return await tenancy.list_tenants(session)

    table = Table("slug", "name", "status", "id", "created")
    for t in _with_engine(work):
        table.add_row(t.slug, t.name, t.status, str(t.id), f"{t.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Never expires if left out.")] = None,
) -> None:
    """Create an API key; it is printed once, as the last line."""
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(engine: AsyncEngine) -> auth.IssuedKey:
        found = await _tenant(engine, tenant)
        async with tenant_transaction(engine, found.id) as session:
            return await auth.create_api_key(
                session, name=name, role=role, expires_at=expires_at, actor=CLI_ACTOR
            )

    issued = _with_engine(work)
    console.print(f"Key {issued.api_key.prefix} ({role.value}) created; it will not be shown again:")
    print(issued.secret)


@apikey_app.command("list")
def apikey_list(tenant: Annotated[str, typer.Option(help="The tenant's slug.")]) -> None:
    """List a tenant's API keys (never their secrets)."""

    async def work(engine: AsyncEngine) -> list[ApiKey]:
        found = await _tenant(engine, tenant)
        async with tenant_transaction(engine, found.id) as session:
            return await auth.list_api_keys(session, first=1000)

    table = Table("prefix", "name", "role", "created", "expires", "last used", "revoked")
    stamp = lambda t: f"{t:%Y-%m-%d %H:%M}" if t else "-"  # noqa: E731
    for k in _with_engine(work):
        table.add_row(
            k.prefix,
            k.name,
            k.role,
            stamp(k.created_at),
            stamp(k.expires_at),
            stamp(k.last_used_at),
            stamp(k.revoked_at),
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's visible prefix, from `apikey list`.")],
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
) -> None:
    """Revoke an API key at once."""

    async def work(engine: AsyncEngine) -> None:
        found = await _tenant(engine, tenant)
        async with tenant_transaction(engine, found.id) as session:
            await auth.revoke_api_key_by_prefix(session, prefix, actor=CLI_ACTOR)

    _with_engine(work)
    console.print(f"Key {prefix} revoked.")


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
    role: Annotated[Role, typer.Option(help="The role the token carries.")],
    subject: Annotated[str, typer.Option(help="Who the token is for.")] = "developer",
    ttl: Annotated[int, typer.Option(min=60, max=86_400, help="Seconds until it expires.")] = 3600,
) -> None:
    """Issue a development JWT (refused in production); printed as the last line."""
    settings = get_settings()
    if not settings.dev_tokens_enabled:
        console.print("[red]Development tokens are off (production, or BRANDLOOP_DEV_TOKENS=false).[/red]")
        raise typer.Exit(2)
    found = _with_engine(lambda engine: _tenant(engine, tenant), settings)
    issuer = DevTokenIssuer(settings.data_dir)
    print(issuer.issue(settings, tenant_id=found.id, role=role, subject=subject, ttl=ttl))


@schema_app.command("export")
def schema_export(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path("docs/schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to docs/schema.graphql."""
    output.write_text(sdl())
    console.print(f"Schema written to {output}.")


@import_app.command("orders")
def import_orders(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .csv or .jsonl file.")],
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Orders per transaction.")] = 1000,
) -> None:
    """Import orders (CSV: a row per order line; JSON Lines: an order per line). Safe to re-run."""
    size = file.stat().st_size

    async def work(engine: AsyncEngine) -> importer.ImportSummary:
        found = await _tenant(engine, tenant)
        with Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("import", total=size)
            summary = await importer.import_orders(
                engine,
                found.id,
                file,
                batch_size=batch_size,
                progress=lambda done: bar.update(task, completed=done),
            )
        if summary.created or summary.updated:
            async with tenant_transaction(engine, found.id) as session:
                await segments.recompute(session)
            async with tenant_transaction(engine, found.id) as session:
                await rollup.catch_up(session)  # the KPI roll-ups of the days imported
        return summary

    started = time.perf_counter()
    try:
        summary = _with_engine(work)
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    elapsed = time.perf_counter() - started
    console.print(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {len(summary.rejected)} ({summary.order_lines} order lines written in {elapsed:.1f} s)"
    )
    for line, reason in summary.rejected[:MAX_REJECTS_SHOWN]:
        console.print(f"  line {line}: {reason}", markup=False, highlight=False)
    if len(summary.rejected) > MAX_REJECTS_SHOWN:
        rejects = file.with_name(file.name + ".rejects.csv")
        with rejects.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "reason"])
            writer.writerows(summary.rejected)
        console.print(f"  ... all {len(summary.rejected)} rejected lines are in {rejects}")
    if summary.rejected:
        raise typer.Exit(1)


@segments_app.command("recompute")
def segments_recompute(tenant: Annotated[str, typer.Option(help="The tenant's slug.")]) -> None:
    """Recompute lifecycle stages, RFM scores and value tiers of every customer (one SQL statement)."""

    async def work(engine: AsyncEngine) -> int:
        found = await _tenant(engine, tenant)
        async with tenant_transaction(engine, found.id) as session:
            return await segments.recompute(session)

    console.print(f"Scored {_with_engine(work)} customers.")


TenantOption = Annotated[str | None, typer.Option(help="One tenant's slug; every active tenant by default.")]


def _each_tenant(slug: str | None, name: str) -> dict[str, int]:
    """Run one of the worker's jobs now, in each tenant's own transaction (as the worker would)."""
    job = next(j for j in jobs.JOBS if j.name == name)
    settings = get_settings()

    async def work(engine: AsyncEngine) -> dict[str, int]:
        if slug is not None:
            tenants = [await _tenant(engine, slug)]
        else:
            async with platform_transaction(engine) as session:
                tenants = [t for t in await tenancy.list_tenants(session) if t.status == "active"]
        return {t.slug: await jobs.run_tenant_job(engine, settings, job, t.id) for t in tenants}

    return _with_engine(work)


@loyalty_app.command("expire")
def loyalty_expire(tenant: TenantOption = None) -> None:
    """Expire what is left of every points lot past its expiry."""
    done = _each_tenant(tenant, "loyalty.expire")
    console.print(f"Expired {sum(done.values())} lots in {len(done)} tenants.")


@loyalty_app.command("review-tiers")
def loyalty_review_tiers(tenant: TenantOption = None) -> None:
    """Review the tiers whose review date has passed: each falls one step if it no longer qualifies."""
    done = _each_tenant(tenant, "loyalty.review_tiers")
    console.print(f"Reviewed the tiers of {sum(done.values())} accounts in {len(done)} tenants.")


@nps_app.command("invite-after-orders")
def nps_invite_after_orders(tenant: TenantOption = None) -> None:
    """Invite the customers whose orders reached an AFTER_ORDER survey's status its delay ago."""
    done = _each_tenant(tenant, "nps.invite_after_orders")
    console.print(f"Made {sum(done.values())} invitations (sent or skipped) in {len(done)} tenants.")


@connections_app.command("sync")
def connections_sync(tenant: TenantOption = None) -> None:
    """Pull every active connection's changes now, as the worker's connections.sync job does."""
    done = _each_tenant(tenant, "connections.sync")
    console.print(f"Synced the connections of {len(done)} tenants.")


@connections_app.command("reseal")
def connections_reseal() -> None:
    """Seal every connection's secrets and grant under BRANDLOOP_ENCRYPTION_KEY (after a key
    rotation; the old key stays in BRANDLOOP_PREVIOUS_ENCRYPTION_KEYS until this has run)."""
    settings = get_settings()

    async def work(engine: AsyncEngine) -> dict[str, int]:
        async with platform_transaction(engine) as session:
            tenants = await tenancy.list_tenants(session)
        done = {}
        for t in tenants:
            async with tenant_transaction(engine, t.id) as session:
                done[t.slug] = await connections.reseal(session, vault(settings))
        return done

    done = _with_engine(work)
    console.print(f"Resealed {sum(done.values())} connections in {len(done)} tenants.")


@kpis_app.command("rebuild")
def kpis_rebuild(
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
    day_from: Annotated[
        datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day (the tenant's).")
    ],
    day_until: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day, included.")],
) -> None:
    """Recompute the KPI roll-ups of a range of days from the raw data, a month per transaction."""
    first, last = day_from.date(), day_until.date()
    if last < first:
        console.print("[red]--to is before --from[/red]")
        raise typer.Exit(2)
    months = []
    start = first
    while start <= last:
        end = min(start.replace(day=1) + relativedelta(months=1) - timedelta(days=1), last)
        months.append((start, end))
        start = end + timedelta(days=1)

    async def work(engine: AsyncEngine) -> None:
        found = await _tenant(engine, tenant)
        with Progress(TextColumn("[bold]rebuilding"), BarColumn(), TextColumn("{task.completed}/{task.total} months"),
                      TimeRemainingColumn(), console=console) as bar:  # fmt: skip
            task = bar.add_task("rebuild", total=len(months))
            for start, end in months:
                async with tenant_transaction(engine, found.id) as session:
                    await rollup.rebuild(session, start, end)
                bar.advance(task)

    _with_engine(work)
    console.print(f"Rebuilt the KPI roll-ups of {first} to {last} for {tenant}.")


@import_app.command("spend")
def import_spend(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV: channel,day_from,day_until,amount,note")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant's slug.")],
) -> None:
    """Import marketing spend (amount in minor units of the reporting currency), all or nothing."""
    with file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        given = [
            kpis.SpendInput(
                channel=r["channel"], day_from=date.fromisoformat(r["day_from"]),
                day_until=date.fromisoformat(r["day_until"]), amount=int(r["amount"]), note=r.get("note") or None,
            )
            for r in rows
        ]  # fmt: skip
    except (KeyError, ValueError) as error:
        console.print(
            f"[red]{file}: {error}: the columns are channel, day_from, day_until, amount, note[/red]"
        )
        raise typer.Exit(2) from error

    async def work(engine: AsyncEngine) -> int:
        found = await _tenant(engine, tenant)
        async with tenant_transaction(engine, found.id) as session:
            return await kpis.record_spend(session, given, actor=CLI_ACTOR)

    try:
        recorded = _with_engine(work)
    except InvalidInput as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    console.print(f"Recorded {recorded} spend entries for {tenant}.")
