"""Health, readiness, metrics, request ids and CORS."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from support import GraphQLClient, Tenant


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_checks_the_database_and_migrations(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        stale = await client.get("/readyz")
        assert stale.status_code == 503
        assert "migrations" in stale.json()["reason"]
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = (SELECT :v)"), {"v": ready.json()["revision"]}
            )


async def test_metrics_count_operations_by_root_field(gql: GraphQLClient, tenant: Tenant) -> None:
    await gql.data(tenant.key, "query Mine { viewer { role } }")
    await gql(tenant.key, "{ nosuchfield }")
    metrics = (await gql.client.get("/metrics")).text
    assert 'brandloop_graphql_operations_total{operation="query viewer",outcome="ok"}' in metrics
    assert 'operation="rejected"' in metrics
    assert "nosuchfield" not in metrics
    assert 'brandloop_http_requests_total{route="/graphql",status="200"}' in metrics


async def test_http_metrics_label_routes_never_their_parameters(client: httpx.AsyncClient) -> None:
    await client.get("/surveys/a-secret-looking-token")
    await client.get("/no/such/path")
    metrics = (await client.get("/metrics")).text
    assert 'brandloop_http_requests_total{route="/surveys/{token}",status="401"}' in metrics
    assert 'route="other",status="404"' in metrics
    assert "a-secret-looking-token" not in metrics and "/no/such/path" not in metrics


async def test_request_ids_are_kept_when_sane(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    hostile = await client.get("/healthz", headers={"X-Request-Id": '"><script>' * 10})
    assert "script" not in hostile.headers["x-request-id"]
    assert len(hostile.headers["x-request-id"]) == 32


async def test_cors_allows_only_the_configured_origins(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options("/graphql", headers={"Origin": "https://app.example.com", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    refused = await client.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers
