"""Helpers shared by the tests: tenants with a key per role, and a GraphQL client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.tenancy import service as tenancy


@dataclass
class Tenant:
    """A tenant made for one test, with a key per role."""

    id: uuid.UUID
    slug: str
    keys: dict[Role, str]

    @property
    def key(self) -> str:
        return self.keys[Role.OWNER]


async def make_tenant(engine: AsyncEngine, slug: str | None = None) -> Tenant:
    slug = slug or f"t-{uuid.uuid4().hex[:10]}"
    async with platform_transaction(engine) as session:
        tenant = await tenancy.create_tenant(session, slug=slug, name=f"Brand {slug}")
    keys = {}
    async with tenant_transaction(engine, tenant.id) as session:
        for role in Role:
            keys[role] = (
                await auth.create_api_key(session, name=f"test {role}", role=role, actor="test")
            ).secret
    return Tenant(tenant.id, slug, keys)


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def raw(
        self, credential: str | None, query: str, variables: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def __call__(
        self, credential: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The response body of a request that must succeed over HTTP."""
        response = await self.raw(credential, query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(
        self, credential: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The data of a request that must have no errors at all."""
        body = await self(credential, query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


RECORD_ORDER = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) { order { customer { id } } userErrors { field code message } }
}"""


async def buy(
    gql: GraphQLClient,
    tenant: Tenant,
    external_id: str,
    buyer: dict[str, Any] | None,
    *,
    channel: str = "shopee",
    status: str = "PAID",
    total: int = 100,
    product: str = "P",
) -> str | None:
    """Record a one-line order through the API; returns the id of the customer it joined."""
    data = await gql.data(
        tenant.key,
        RECORD_ORDER,
        {
            "input": {
                "channel": channel,
                "externalId": external_id,
                "status": status,
                "currency": "CNY",
                "total": total,
                "placedAt": "2026-11-01T00:00:00Z",
                "lines": [{"sku": "S", "productName": product, "quantity": 1, "unitPrice": total}],
                "buyer": buyer,
            }
        },
    )
    payload = data["recordOrder"]
    assert payload["userErrors"] == [], payload
    customer = payload["order"]["customer"]
    return customer["id"] if customer else None
