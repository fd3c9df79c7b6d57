"""The `brandloop` command line against the test database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from loyalty_support import backdate_rules, order, program, rules
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from brandloop.cli import app
from brandloop.graphql.schema import sdl
from brandloop.settings import Settings, get_settings
from support import GraphQLClient, Tenant


@pytest.fixture
def brandloop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """Runs commands as a user would, configured through the environment."""
    monkeypatch.setenv("BRANDLOOP_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("BRANDLOOP_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


async def arun(runner: CliRunner, *args: str, code: int = 0) -> str:
    """`run` from an async test: the CLI starts its own event loop, so it needs a thread."""
    return await asyncio.to_thread(run, runner, *args, code=code)


async def test_tenant_and_api_key_commands(brandloop: CliRunner, gql: GraphQLClient) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert "created" in await arun(brandloop, "tenant", "create", slug, "--name", "CLI Brand")
    assert slug in await arun(brandloop, "tenant", "list")
    assert "exists already" in await arun(brandloop, "tenant", "create", slug, "--name", "Again", code=2)
    assert "lower-case" in await arun(brandloop, "tenant", "create", "Bad Slug!", "--name", "x", code=2)

    output = await arun(brandloop, "apikey", "create", "--tenant", slug, "--role", "analyst", "--name", "bi")
    key = output.strip().splitlines()[-1]
    data = await gql.data(key, "{ viewer { tenant { slug } role } }")
    assert data["viewer"] == {"tenant": {"slug": slug}, "role": "ANALYST"}

    prefix = key.split("_")[1]
    listing = await arun(brandloop, "apikey", "list", "--tenant", slug)
    assert prefix in listing and key not in listing
    assert "revoked" in await arun(brandloop, "apikey", "revoke", prefix, "--tenant", slug)
    assert (await gql.raw(key, "{ viewer { role } }")).status_code == 401
    assert "No tenant" in await arun(
        brandloop, "apikey", "create", "--tenant", "missing-x", "--role", "viewer", code=2
    )


async def test_token_command_issues_a_working_development_jwt(
    brandloop: CliRunner, gql: GraphQLClient
) -> None:
    slug = f"tok-{uuid.uuid4().hex[:8]}"
    await arun(brandloop, "tenant", "create", slug, "--name", "Token Brand")
    token = (await arun(brandloop, "token", "--tenant", slug, "--role", "marketer")).strip().splitlines()[-1]
    data = await gql.data(token, "{ viewer { tenant { slug } role } }")
    assert data["viewer"] == {"tenant": {"slug": slug}, "role": "MARKETER"}


def test_token_command_is_refused_in_production(
    brandloop: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRANDLOOP_DEV_TOKENS", "false")
    get_settings.cache_clear()
    assert "off" in run(brandloop, "token", "--tenant", "x", "--role", "owner", code=2)


def test_schema_export(brandloop: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    run(brandloop, "schema", "export", "--output", str(target))
    assert target.read_text() == sdl()


def test_migrate_is_idempotent(brandloop: CliRunner) -> None:
    assert "revision" in run(brandloop, "migrate")


def test_seed_demo_prints_the_same_key_twice(brandloop: CliRunner) -> None:
    first = run(brandloop, "seed-demo").strip().splitlines()[-1]
    assert first.startswith("API key: blk_")
    assert run(brandloop, "seed-demo").strip().splitlines()[-1] == first


async def test_segments_recompute(brandloop: CliRunner, tenant: Tenant, gql: GraphQLClient) -> None:
    await gql.data(
        tenant.key, 'mutation { createCustomer(input: {displayName: "P"}) { userErrors { code } } }'
    )
    assert "Scored 1 customers" in await arun(brandloop, "segments", "recompute", "--tenant", tenant.slug)


async def test_loyalty_jobs(
    brandloop: CliRunner, engine: AsyncEngine, tenant: Tenant, gql: GraphQLClient
) -> None:
    program_id = await program(gql, tenant, expiryPolicy="MONTHS", expiryPeriod=1)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=90)
    await order(gql, tenant, "A", placed=-60 * 24 * 60)  # earned two months ago: expired by now
    assert "Expired 1 lots in 1 tenants" in await arun(
        brandloop, "loyalty", "expire", "--tenant", tenant.slug
    )
    assert "Expired 0 lots in 1 tenants" in await arun(
        brandloop, "loyalty", "expire", "--tenant", tenant.slug
    )
    out = await arun(brandloop, "loyalty", "review-tiers", "--tenant", tenant.slug)
    assert "Reviewed the tiers of 0 accounts" in out


async def test_nps_job(brandloop: CliRunner, tenant: Tenant) -> None:
    out = await arun(brandloop, "nps", "invite-after-orders", "--tenant", tenant.slug)
    assert "Made 0 invitations (sent or skipped) in 1 tenants" in out
