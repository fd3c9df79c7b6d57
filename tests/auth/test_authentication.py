"""Who may call: API keys, JWTs from an identity provider's JWKS, development tokens, roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.auth.jwt import DevTokenIssuer
from brandloop.auth.permissions import Role
from brandloop.settings import Settings
from support import GraphQLClient, Tenant

VIEWER = "{ viewer { tenant { slug } role } }"
ISSUER = "https://idp.example.test/"


class IdentityProvider:
    """A stand-in identity provider on loopback: serves its JWKS and counts fetches."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})]
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": [k.as_dict(private=False) for k in provider.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, tenant: Tenant | None, role: str = "analyst", key: Any = None, **overrides: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": "brandloop",
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "brandloop_tenant": str(tenant.id) if tenant else None,
            "brandloop_role": role,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.server.shutdown()


@pytest.fixture(scope="module")
async def idp_gql(
    settings: Settings, engine: AsyncEngine, idp: IdentityProvider
) -> AsyncIterator[GraphQLClient]:
    configured = settings.model_copy(update={"jwt_issuer": ISSUER, "jwt_jwks_url": idp.url})
    app = create_app(configured)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield GraphQLClient(client)


async def refused(gql: GraphQLClient, credential: str | None) -> str:
    response = await gql.raw(credential, VIEWER)
    assert response.status_code == 401, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    return error["message"]


# -- API keys ----------------------------------------------------------------------------------


async def test_no_credential_is_a_401_that_says_what_to_send(gql: GraphQLClient) -> None:
    assert "Authorization: Bearer" in await refused(gql, None)
    response = await gql.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": "Basic abc"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("credential", ["blk_nope", "blk_000000000000_wrong", "blk__", "x" * 5000])
async def test_unknown_or_malformed_keys_are_refused(gql: GraphQLClient, credential: str) -> None:
    await refused(gql, credential)


async def test_a_key_with_a_right_prefix_and_a_wrong_secret_is_refused(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    prefix = tenant.key.split("_")[1]
    assert "not valid" in await refused(gql, f"blk_{prefix}_{'A' * 43}")


async def test_keys_are_stored_only_as_digests(engine: AsyncEngine, tenant: Tenant) -> None:
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT prefix, digest FROM api_keys WHERE tenant_id = :t"), {"t": tenant.id}
            )
        ).all()
    secrets = set(tenant.keys.values())
    for _prefix, digest in stored:
        assert len(digest) == 32
        assert all(secret.encode() not in bytes(digest) for secret in secrets)


async def test_api_key_lifecycle_through_graphql(gql: GraphQLClient, tenant: Tenant) -> None:
    created = await gql.data(
        tenant.key,
        """mutation { createApiKey(input: {name: "Partner ERP", role: MARKETER}) {
             apiKey { id name prefix role revokedAt lastUsedAt } secret userErrors { code } } }""",
    )
    payload = created["createApiKey"]
    secret, key = payload["secret"], payload["apiKey"]
    assert secret.startswith(f"blk_{key['prefix']}_") and key["role"] == "MARKETER"
    assert (await gql.data(secret, VIEWER))["viewer"]["role"] == "MARKETER"

    listed = await gql.data(
        tenant.key, "{ apiKeys(first: 100) { totalCount edges { node { id prefix lastUsedAt } } } }"
    )
    nodes = {e["node"]["id"]: e["node"] for e in listed["apiKeys"]["edges"]}
    assert nodes[key["id"]]["lastUsedAt"] is not None
    assert listed["apiKeys"]["totalCount"] == len(Role) + 1
    assert secret not in json.dumps(listed)

    revoked = await gql.data(
        tenant.key,
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } userErrors { code } } }",
        {"id": key["id"]},
    )
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    assert "revoked" in await refused(gql, secret)


async def test_keys_cannot_be_created_above_ones_own_role(gql: GraphQLClient, tenant: Tenant) -> None:
    query = 'mutation($role: Role!) { createApiKey(input: {name: "x", role: $role}) { secret userErrors { field code } } }'
    data = await gql.data(tenant.keys[Role.ADMIN], query, {"role": "OWNER"})
    assert data["createApiKey"] == {
        "secret": None,
        "userErrors": [{"field": "role", "code": "ROLE_TOO_HIGH"}],
    }
    data = await gql.data(tenant.keys[Role.ADMIN], query, {"role": "ADMIN"})
    assert data["createApiKey"]["secret"]
    body = await gql(tenant.keys[Role.MARKETER], query, {"role": "VIEWER"})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ('name: ""', "INVALID_LENGTH"),
        (f'name: "{"n" * 101}"', "INVALID_LENGTH"),
        ('name: "x", expiresAt: "2001-01-01T00:00:00Z"', "IN_THE_PAST"),
    ],
)
async def test_bad_api_key_input(gql: GraphQLClient, tenant: Tenant, fields: str, code: str) -> None:
    data = await gql.data(
        tenant.key,
        f"mutation {{ createApiKey(input: {{{fields}, role: VIEWER}}) {{ secret userErrors {{ code }} }} }}",
    )
    assert data["createApiKey"] == {"secret": None, "userErrors": [{"code": code}]}


async def test_an_expired_key_is_refused(gql: GraphQLClient, engine: AsyncEngine, tenant: Tenant) -> None:
    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    data = await gql.data(
        tenant.key,
        'mutation($at: DateTime!) { createApiKey(input: {name: "short", role: VIEWER, expiresAt: $at}) { secret apiKey { prefix } } }',
        {"at": expires},
    )
    secret = data["createApiKey"]["secret"]
    assert (await gql.data(secret, VIEWER))["viewer"]["role"] == "VIEWER"
    async with engine.begin() as conn:  # let time pass
        await conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE prefix = :p"),
            {"p": data["createApiKey"]["apiKey"]["prefix"]},
        )
    assert "expired" in await refused(gql, secret)


async def test_a_suspended_tenant_is_refused(gql: GraphQLClient, engine: AsyncEngine, tenant: Tenant) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE tenants SET status = 'suspended' WHERE id = :t"), {"t": tenant.id})
    assert "suspended" in await refused(gql, tenant.key)


# -- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "query", "allowed"),
    [
        (Role.VIEWER, "{ customers { totalCount } }", True),
        (Role.VIEWER, "{ apiKeys { totalCount } }", False),
        (Role.ANALYST, "{ apiKeys { totalCount } }", False),
        (Role.MARKETER, "{ apiKeys { totalCount } }", False),
        (Role.ADMIN, "{ apiKeys { totalCount } }", True),
        (
            Role.ANALYST,
            'mutation { createCustomer(input: {displayName: "x"}) { userErrors { code } } }',
            False,
        ),
        (
            Role.MARKETER,
            'mutation { createCustomer(input: {displayName: "x"}) { userErrors { code } } }',
            True,
        ),
    ],
)
async def test_each_role_gets_what_it_may(
    gql: GraphQLClient, tenant: Tenant, role: Role, query: str, allowed: bool
) -> None:
    body = await gql(tenant.keys[role], query)
    if allowed:
        assert "errors" not in body
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert role.value in body["errors"][0]["message"]


# -- development tokens ------------------------------------------------------------------------


async def test_development_tokens_work_and_expire(
    gql: GraphQLClient, settings: Settings, tenant: Tenant
) -> None:
    issuer = DevTokenIssuer(settings.data_dir)
    token = issuer.issue(settings, tenant_id=tenant.id, role=Role.ANALYST, subject="dev")
    assert (await gql.data(token, VIEWER))["viewer"] == {"tenant": {"slug": tenant.slug}, "role": "ANALYST"}
    expired = issuer.issue(settings, tenant_id=tenant.id, role=Role.ANALYST, subject="dev", ttl=-120)
    assert "expired" in (await refused(gql, expired)).lower()


async def test_development_tokens_are_refused_in_production(
    settings: Settings, engine: AsyncEngine, tenant: Tenant
) -> None:
    token = DevTokenIssuer(settings.data_dir).issue(
        settings, tenant_id=tenant.id, role=Role.OWNER, subject="dev"
    )
    production = Settings(
        _env_file=None,
        environment="production",
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        secret_key="a-production-secret-of-32-characters-or-more",
        encryption_key="q3v2m9c1l0x8b7n6a5s4d3f2g1h0j9k8l7z6x5c4v3b",
        public_url="https://api.brand.example",
    )
    app = create_app(production)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        gql = GraphQLClient(client)
        assert "not accepted" in await refused(gql, token)
        assert (await gql.data(tenant.key, VIEWER))["viewer"]["role"] == "OWNER"
        page = await client.get("/graphql")
        assert page.status_code == 405  # no GraphiQL in production


def test_production_refuses_development_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANDLOOP_DATABASE_URL", raising=False)
    with pytest.raises(ValueError, match="BRANDLOOP_DATABASE_URL") as refused:
        Settings(_env_file=None, environment="production")
    assert "BRANDLOOP_SECRET_KEY" in str(refused.value)
    assert "BRANDLOOP_ENCRYPTION_KEY" in str(refused.value)
    with pytest.raises(ValueError, match="BRANDLOOP_SECRET_KEY"):
        Settings(
            _env_file=None, environment="production", database_url="postgresql://x/y", secret_key="short"
        )


def test_production_refuses_every_development_switch(tmp_path: Path) -> None:
    development_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    (tmp_path / "encryption-key").write_text(development_key)
    fine = {
        "_env_file": None, "environment": "production", "database_url": "postgresql://x/y", "data_dir": tmp_path,
        "secret_key": "s" * 40, "encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "public_url": "https://api.brand.example",
    }  # fmt: skip
    settings = Settings(**fine)
    assert not settings.dev_tokens_enabled and not settings.graphiql_enabled
    for change, named in [
        ({"dev_tokens": True}, "BRANDLOOP_DEV_TOKENS"),
        ({"graphiql": True}, "BRANDLOOP_GRAPHIQL"),
        ({"public_url": "http://127.0.0.1:8000"}, "BRANDLOOP_PUBLIC_URL"),
        ({"encryption_key": development_key}, "development key"),
    ]:
        with pytest.raises(ValueError, match=named):
            Settings(**{**fine, **change})


# -- JWTs from the identity provider -----------------------------------------------------------


async def test_idp_tokens_are_verified_against_the_jwks(
    idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant
) -> None:
    data = await idp_gql.data(idp.token(tenant, "analyst"), VIEWER)
    assert data["viewer"] == {"tenant": {"slug": tenant.slug}, "role": "ANALYST"}
    fetches = idp.fetches
    for _ in range(3):
        await idp_gql.data(idp.token(tenant, "viewer"), VIEWER)
    assert idp.fetches == fetches  # cached, not fetched per request


async def test_a_rotated_key_is_fetched_once_on_its_unknown_kid(
    idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant
) -> None:
    new_key = ECKey.generate_key("P-256", parameters={"kid": f"ec-{uuid.uuid4().hex[:6]}"})
    idp.keys.append(new_key)
    before = idp.fetches
    data = await idp_gql.data(idp.token(tenant, "marketer", key=new_key), VIEWER)
    assert data["viewer"]["role"] == "MARKETER"
    assert idp.fetches == before + 1


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example/"}, "not accepted"),
        ({"sub": None}, "sub"),
        ({"brandloop_role": "superuser"}, "role"),
        ({"brandloop_tenant": "not-a-uuid"}, "tenant"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ],
)
async def test_bad_claims_are_refused(
    idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant, overrides: dict[str, Any], says: str
) -> None:
    message = await refused(idp_gql, idp.token(tenant, **overrides))
    assert says in message.lower()


async def test_a_token_for_an_unknown_tenant_is_refused(
    idp_gql: GraphQLClient, idp: IdentityProvider
) -> None:
    token = idp.token(None, brandloop_tenant=str(uuid.uuid4()))
    await refused(idp_gql, token)


async def test_a_token_signed_by_another_key_is_refused(
    idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant
) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # same kid, other key
    await refused(idp_gql, idp.token(tenant, key=stranger))


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode(header)}.{encode(claims)}."


async def test_alg_none_is_refused(idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "brandloop",
        "sub": "x",
        "exp": now + 300,
        "brandloop_tenant": str(tenant.id),
        "brandloop_role": "owner",
    }
    await refused(idp_gql, _unsigned({"alg": "none", "kid": "rsa-1"}, claims))


async def test_hmac_signed_with_the_public_key_is_refused(
    idp_gql: GraphQLClient, idp: IdentityProvider, tenant: Tenant
) -> None:
    # The classic confusion: HS256 keyed with the RSA public key's bytes, which a verifier that
    # trusts the header's alg would accept.
    public_pem = idp.keys[0].as_pem(private=False)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "brandloop",
        "sub": "x",
        "exp": now + 300,
        "brandloop_tenant": str(tenant.id),
        "brandloop_role": "owner",
    }
    unsigned = _unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims).rstrip(".")
    signature = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    token = unsigned + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    await refused(idp_gql, token)


def test_symmetric_algorithms_cannot_be_configured() -> None:
    from brandloop.auth.jwt import JwtVerifier

    with pytest.raises(ValueError, match="asymmetric"):
        JwtVerifier(Settings(_env_file=None, jwt_algorithms=["RS256", "HS256"]))


async def test_an_unreachable_idp_is_a_clear_401(
    settings: Settings, engine: AsyncEngine, tenant: Tenant, idp: IdentityProvider
) -> None:
    dead = settings.model_copy(
        update={"jwt_issuer": ISSUER, "jwt_jwks_url": "http://127.0.0.1:9/jwks", "jwks_timeout_seconds": 1.0}
    )
    app = create_app(dead)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        assert "try again" in await refused(GraphQLClient(client), idp.token(tenant))
