"""Limits against abuse, the shape of errors, and the HTTP edges of /graphql."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.customers import service
from brandloop.settings import Settings
from support import GraphQLClient, Tenant


async def test_cost_is_reported_and_grows_with_page_size(gql: GraphQLClient, tenant: Tenant) -> None:
    small = await gql(tenant.key, "{ customers(first: 10) { edges { node { id tags { name } } } } }")
    large = await gql(tenant.key, "{ customers(first: 100) { edges { node { id tags { name } } } } }")
    assert small["extensions"]["cost"]["requested"] == 1 + 10 * 3
    assert large["extensions"]["cost"]["requested"] == 1 + 100 * 3
    assert large["extensions"]["cost"]["maximum"] == 50_000


@pytest.fixture(scope="module")
async def strict_gql(settings: Settings, engine: AsyncEngine) -> AsyncIterator[GraphQLClient]:
    """An API with small limits, so that limits are reached without huge queries."""
    app = create_app(settings.model_copy(update={"max_query_cost": 1000, "max_query_depth": 3}))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield GraphQLClient(client)


async def test_a_too_costly_query_is_refused_before_it_runs(
    strict_gql: GraphQLClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused query must not reach the database")

    monkeypatch.setattr(service, "list_customers", must_not_run)
    fields = " ".join(f"c{i}: customers(first: 100) {{ edges {{ id: cursor }} }}" for i in range(10))
    body = await strict_gql(tenant.key, f"{{ {fields} }}")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "first" in body["errors"][0]["message"]


async def test_cost_follows_variables_and_fragments(gql: GraphQLClient, tenant: Tenant) -> None:
    query = """
    query($n: Int!) { customers(first: $n) { ...page } }
    fragment page on CustomerConnection { edges { node { ... on Customer { tags { id } } } } }
    """
    body = await gql(tenant.key, query, {"n": 40})
    assert body["extensions"]["cost"]["requested"] == 1 + 40 * 3


async def test_deep_queries_are_refused(strict_gql: GraphQLClient, tenant: Tenant) -> None:
    shallow = await strict_gql(tenant.key, "{ customers { edges { node { id } } } }")
    assert "errors" not in shallow
    body = await strict_gql(tenant.key, "{ customers { edges { node { tags { name } } } } }")
    assert body["data"] is None
    assert "depth" in body["errors"][0]["message"]


async def test_alias_floods_are_refused(gql: GraphQLClient, tenant: Tenant) -> None:
    aliases = " ".join(f"a{i}: viewer {{ role }}" for i in range(40))
    body = await gql(tenant.key, f"{{ {aliases} }}")
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]


async def test_token_floods_are_refused(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.key, "{ viewer { " + "role " * 6000 + "} }")
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()


async def test_batches_and_bad_bodies_get_400s(gql: GraphQLClient, tenant: Tenant) -> None:
    headers = {"Authorization": f"Bearer {tenant.key}"}
    client = gql.client
    batch = await client.post("/graphql", json=[{"query": "{ viewer { role } }"}] * 2, headers=headers)
    assert batch.status_code == 400 and "Batched" in batch.json()["errors"][0]["message"]
    broken = await client.post(
        "/graphql", content=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    no_query = await client.post("/graphql", json={"variables": {}}, headers=headers)
    assert no_query.status_code == 400
    form = await client.post("/graphql", data={"query": "{ viewer { role } }"}, headers=headers)
    assert form.status_code == 415
    huge = await client.post(
        "/graphql", json={"query": "{ viewer { role } }", "x": "y" * 2_000_000}, headers=headers
    )
    assert huge.status_code == 413
    bad_vars = await client.post(
        "/graphql", json={"query": "{ viewer { role } }", "variables": [1]}, headers=headers
    )
    assert bad_vars.status_code == 400


async def test_unknown_fields_say_so(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.key, "{ customers { edges { node { password } } } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "password" in body["errors"][0]["message"]


async def test_unexpected_failures_are_masked_with_a_request_id(
    gql: GraphQLClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection string postgres://secret@db")

    monkeypatch.setattr(service, "count_tags", broken)
    response = await gql.raw(tenant.key, "{ tags { totalCount } }")
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in response.text
    assert response.headers["x-request-id"] in error["message"]
    assert error["path"] == ["tags", "totalCount"]


async def test_mutations_are_not_allowed_over_get(gql: GraphQLClient) -> None:
    response = await gql.client.get(
        "/graphql",
        params={"query": 'mutation { createCustomer(input: {displayName: "x"}) { userErrors { code } } }'},
    )
    assert response.status_code == 200
    assert "<html" in response.text.lower()  # GET only serves GraphiQL, never executes
