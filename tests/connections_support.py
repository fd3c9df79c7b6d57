"""Helpers for the connection tests."""

from __future__ import annotations

from support import GraphQLClient, Tenant

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
