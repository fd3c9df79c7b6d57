"""Automatic persisted queries: a hash instead of the query text, as SPA clients send them."""

from __future__ import annotations

import hashlib
from typing import Any

from support import GraphQLClient, Tenant

QUERY = "{ customers(first: 3) { totalCount edges { node { displayName } } } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()


def persisted(digest: str = DIGEST, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def post(gql: GraphQLClient, key: str | None, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await gql.client.post("/graphql", json=body, headers=headers)


async def test_the_hash_alone_works_once_the_text_was_sent(gql: GraphQLClient, tenant: Tenant) -> None:
    unknown = await post(gql, tenant.key, {"extensions": persisted(hashlib.sha256(b"other").hexdigest())})
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0] == {
        "message": "PersistedQueryNotFound",
        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
    }

    first = await post(gql, tenant.key, {"query": QUERY, "extensions": persisted()})
    assert first.json()["data"]["customers"]["totalCount"] == 0
    again = await post(gql, tenant.key, {"extensions": persisted()})
    assert again.json()["data"] == first.json()["data"]


async def test_a_wrong_hash_or_version_is_refused(gql: GraphQLClient, tenant: Tenant) -> None:
    mismatch = await post(gql, tenant.key, {"query": QUERY, "extensions": persisted("0" * 64)})
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    version = await post(gql, tenant.key, {"extensions": persisted(version=2)})
    assert version.status_code == 400


async def test_strangers_cannot_store_queries(gql: GraphQLClient, tenant: Tenant) -> None:
    text = "{ tags { totalCount } }"
    digest = hashlib.sha256(text.encode()).hexdigest()
    stranger = await post(gql, None, {"query": text, "extensions": persisted(digest)})
    assert stranger.status_code == 401
    after = await post(gql, tenant.key, {"extensions": persisted(digest)})
    assert after.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
