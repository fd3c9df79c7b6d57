"""A real PostgreSQL for the tests: BRANDLOOP_DATABASE_URL's server, else the embedded one.

Each run creates its own database (and drops it at the end), so parallel runs never collide.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.db import embedded, migrate
from brandloop.db.engine import create_engine
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.settings import Settings
from brandloop.tenancy import service as tenancy


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="brandloop-test-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def server_url(data_dir: Path) -> str:
    """The server to create the test database on (a maintenance database URL)."""
    configured = os.environ.get("BRANDLOOP_DATABASE_URL")
    return configured or embedded.start(data_dir)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    name = f"brandloop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(server_url).set(drivername="postgresql+asyncpg").render_as_string(False))
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        cors_origins=["https://app.example.com"],
        log_json=False,
    )


@pytest.fixture(scope="session")
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
    ):
        yield client


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
            keys[role] = (await auth.create_api_key(session, name=f"test {role}", role=role)).secret
    return Tenant(tenant.id, slug, keys)


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine)


@pytest.fixture
async def other_tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine)


class GraphQLClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def raw(self, credential: str | None, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def __call__(self, credential: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response body of a request that must succeed over HTTP."""
        response = await self.raw(credential, query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, credential: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a request that must have no errors at all."""
        body = await self(credential, query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)
