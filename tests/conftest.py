"""A real PostgreSQL for the tests: BRANDLOOP_DATABASE_URL's server, else the embedded one.

Each run creates its own database (and drops it at the end), so parallel runs never collide.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from brandloop.app import create_app
from brandloop.db import embedded, migrate
from brandloop.db.engine import create_engine
from brandloop.settings import Settings
from support import GraphQLClient, Tenant, make_tenant


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
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Starlette]:
    """The application, started (its engine is its own, like in production)."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine)


@pytest.fixture
async def other_tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine)


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)
