"""Helpers for the connection tests."""

from __future__ import annotations

from support import GraphQLClient, Tenant

ORDERS: list[dict[str, object]] = []
"""What the example platform stand-in (tests/connectors/conftest.py) lists, two a page."""
FAILURES: dict[str, int] = {}
"""How many more times the stand-in fails a request for a cursor."""

CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id connector name status config secretsSet } userErrors { field code } } }"""


async def create(gql: GraphQLClient, tenant: Tenant, **given: object) -> dict[str, object]:
    data = await gql.data(
        tenant.key,
        CREATE,
        {
            "input": {
                "connector": "example",
                "name": "Flagship store",
                "config": {"app_key": "k1", "app_secret": "s3cret-value"},
                **given,
            }
        },
    )
    return dict(data["createConnection"])
