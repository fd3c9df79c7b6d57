"""Connections through the API: configured by the connector's own model, secrets sealed and never returned."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from connections_support import create
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.auth.permissions import Role
from brandloop.connections import service
from brandloop.connections.models import Connection
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import Vault, VaultError, vault
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.graphql.relay import pk_of
from brandloop.settings import Settings
from brandloop.signing import sign, signing_key
from support import GraphQLClient, Tenant

UPDATE = """mutation($input: UpdateConnectionInput!) { updateConnection(input: $input) {
  connection { config secretsSet } userErrors { field code } } }"""


async def test_the_installed_connectors_are_listed(site: Path, gql: GraphQLClient, tenant: Tenant) -> None:
    data = await gql.data(
        tenant.key, "{ connectors { key displayName capabilities configFields { name secret required } } }"
    )
    by_key = {c["key"]: c for c in data["connectors"]}
    installed = ["amazon", "example", "shopee", "tiktok_shop", "wechat"]
    assert sorted(by_key) == installed  # the built-in plugins and the example, found the same way
    assert by_key["shopee"]["configFields"] == [
        {"name": "partner_id", "secret": False, "required": True},
        {"name": "partner_key", "secret": True, "required": True},
        {"name": "shop_id", "secret": False, "required": False},
        {"name": "push_partner_key", "secret": True, "required": False},
        {"name": "api_base_url", "secret": False, "required": False},
    ]
    assert [f["name"] for f in by_key["tiktok_shop"]["configFields"] if f["secret"]] == ["app_secret"]
    assert [f["name"] for f in by_key["amazon"]["configFields"] if f["secret"]] == [
        "lwa_client_secret",
        "refresh_token",
    ]
    assert [f["name"] for f in by_key["wechat"]["configFields"] if f["secret"]] == [
        "secret",
        "token",
        "encoding_aes_key",
    ]
    schema = (await gql.data(tenant.key, "{ connectors { key configSchema } }"))["connectors"]
    shopee_schema = next(c["configSchema"] for c in schema if c["key"] == "shopee")
    assert shopee_schema["required"] == ["partner_id", "partner_key"]
    assert shopee_schema["properties"]["partner_key"]["writeOnly"] is True
    assert [by_key["example"]] == [
        {
            "key": "example",
            "displayName": "Example Market",
            "capabilities": ["listings", "orders", "webhooks"],
            "configFields": [
                {"name": "base_url", "secret": False, "required": False},
                {"name": "app_key", "secret": False, "required": True},
                {"name": "app_secret", "secret": True, "required": True},
            ],
        }
    ]
    body = await gql(tenant.keys[Role.MARKETER], "{ connectors { key } }")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_secrets_go_in_sealed_and_never_come_out(
    site: Path, engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant
) -> None:
    created = await create(gql, tenant)
    assert created["userErrors"] == []
    connection = created["connection"]
    assert isinstance(connection, dict)
    assert connection["config"] == {"base_url": "https://api.example-market.test", "app_key": "k1"}
    assert connection["secretsSet"] == ["app_secret"] and connection["status"] == "PENDING"
    listed = await gql.data(tenant.key, "{ connections { edges { node { config secretsSet } } } }")
    assert "s3cret-value" not in str(listed)
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    async with platform_transaction(engine) as session:  # the owner reads the raw row
        row = (
            await session.execute(
                text("SELECT config::text, secrets FROM connections WHERE id = :id"), {"id": pk}
            )
        ).one()
    assert b"s3cret-value" not in row.secrets and "s3cret-value" not in row.config
    async with tenant_transaction(engine, tenant.id) as session:
        stored = await session.get(Connection, (tenant.id, pk))
        assert stored is not None
        config = service.configuration(vault(settings), stored)
        assert config.app_secret.get_secret_value() == "s3cret-value"  # type: ignore[attr-defined]
        # Sealed for this row: the same ciphertext under another row's id does not open.
        with pytest.raises(VaultError):
            vault(settings).open(stored.secrets, tenant.id, stored.tenant_id)
    kept = await gql.data(
        tenant.key, UPDATE, {"input": {"id": connection["id"], "config": {"app_key": "k2"}}}
    )
    assert kept["updateConnection"]["connection"]["config"]["app_key"] == "k2"
    async with tenant_transaction(engine, tenant.id) as session:
        stored = await session.get(Connection, (tenant.id, pk))
        assert stored is not None
        assert service.opened(vault(settings), stored) == {"app_secret": "s3cret-value"}


async def test_bad_settings_are_refused(
    site: Path, gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    missing = await create(gql, tenant, config={"app_secret": "x"})
    assert missing["userErrors"] == [{"field": "config.app_key", "code": "INVALID_CONFIG"}]
    extra = await create(gql, tenant, config={"app_key": "k", "app_secret": "x", "surprise": 1})
    assert extra["userErrors"] == [{"field": "config.surprise", "code": "INVALID_CONFIG"}]
    unknown = await create(gql, tenant, connector="nope")
    assert unknown["userErrors"] == [{"field": "connector", "code": "UNKNOWN_CONNECTOR"}]
    assert (await create(gql, tenant))["userErrors"] == []
    assert (await create(gql, tenant))["userErrors"] == [{"field": "name", "code": "NAME_TAKEN"}]
    theirs = await gql.data(other_tenant.key, "{ connections { totalCount } }")
    assert theirs["connections"]["totalCount"] == 0


async def test_a_connection_is_authorized_through_the_platforms_consent(
    site: Path,
    engine: AsyncEngine,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    market: tuple[str, list[dict[str, object]]],
) -> None:
    base_url, seen = market
    created = await create(
        gql, tenant, config={"base_url": base_url, "app_key": "k1", "app_secret": "s3cret-value"}
    )
    connection = created["connection"]
    assert isinstance(connection, dict)
    data = await gql.data(
        tenant.key,
        "mutation($id: ID!) { startAuthorization(input: {id: $id}) { url userErrors { code } } }",
        {"id": connection["id"]},
    )
    url = httpx.URL(data["startAuthorization"]["url"])
    assert str(url).startswith(f"{base_url}/authorize?") and url.params["redirect_uri"].endswith(
        "/connectors/callback"
    )
    state = url.params["state"]
    # The platform sends the admin back with a code and the state.
    forged = await client.get("/connectors/callback", params={"state": state[:-2] + "xx", "code": "c0de"})
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "INVALID_STATE"
    refused = await client.get("/connectors/callback", params={"state": state, "code": "wrong"})
    assert refused.status_code == 502
    done = await client.get("/connectors/callback", params={"state": state, "code": "c0de", "shop_id": "42"})
    assert done.status_code == 200 and done.json() == {
        "connected": True,
        "connection": "Flagship store",
        "connector": "example",
    }
    assert seen[-1] == {"app_key": "k1", "app_secret": "s3cret-value", "code": "c0de"}
    listed = await gql.data(tenant.key, "{ connections { edges { node { status authorizedAt } } } }")
    node = listed["connections"]["edges"][0]["node"]
    assert node["status"] == "ACTIVE" and node["authorizedAt"] is not None
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    async with platform_transaction(engine) as session:
        sealed = await session.scalar(text("SELECT grant_sealed FROM connections WHERE id = :id"), {"id": pk})
    assert sealed is not None and b"at-123" not in sealed and b"rt-456" not in sealed
    # A grant about to expire is refreshed (the job connections.refresh_grants), once.
    almost = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(minutes=15)
    async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
        assert await service.refresh_grants(session, vault(settings), platforms, now=almost) == 1
    async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
        assert await service.refresh_grants(session, vault(settings), platforms, now=almost) == 0
        stored = await session.get(Connection, (tenant.id, pk))
        assert stored is not None
        grant = service.grant_of(vault(settings), stored)
        assert grant.access_token.get_secret_value() == "at-789"
        assert grant.expires_at == datetime(2027, 1, 1, tzinfo=UTC)


async def test_an_expired_or_foreign_state_is_refused(
    site: Path, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    connection = (await create(gql, tenant))["connection"]
    assert isinstance(connection, dict)
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    key = signing_key(settings)
    past = int((datetime.now(UTC) - timedelta(seconds=1)).timestamp())
    expired = sign(key, {"t": str(tenant.id), "c": str(pk), "exp": past, "n": "x"})
    refused = await client.get("/connectors/callback", params={"state": expired, "code": "c0de"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "INVALID_STATE"
    missing = await client.get("/connectors/callback", params={"code": "c0de"})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "INVALID_CALLBACK"
    other_key = signing_key(settings.model_copy(update={"secret_key": SecretStr("y" * 40)}))
    future = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    forged = sign(other_key, {"t": str(tenant.id), "c": str(pk), "exp": future, "n": "x"})
    assert (
        await client.get("/connectors/callback", params={"state": forged, "code": "c0de"})
    ).status_code == 400


async def test_the_encryption_key_rotates_without_losing_a_secret(
    site: Path, engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant, settings: Settings
) -> None:
    connection = (await create(gql, tenant))["connection"]
    assert isinstance(connection, dict)
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    old = vault(settings)
    encoded = lambda key: SecretStr(base64.urlsafe_b64encode(key).decode())  # noqa: E731
    rotated = settings.model_copy(
        update={"encryption_key": encoded(os.urandom(32)), "previous_encryption_keys": [encoded(old.key)]}
    )
    new = vault(rotated)
    async with tenant_transaction(engine, tenant.id) as session:
        stored = await session.get(Connection, (tenant.id, pk))
        assert stored is not None and stored.key_id == old.key_id
        assert service.opened(new, stored) == {"app_secret": "s3cret-value"}  # the old key still opens
        assert await service.reseal(session, new) == 1
        assert await service.reseal(session, new) == 0
    only_new = Vault(new.key)
    async with tenant_transaction(engine, tenant.id) as session:
        stored = await session.get(Connection, (tenant.id, pk))
        assert stored is not None and stored.key_id == new.key_id
        assert service.opened(only_new, stored) == {"app_secret": "s3cret-value"}
        with pytest.raises(VaultError):
            service.opened(Vault(old.key), stored)  # the old key can go
