"""What every benchmark stands on: a scratch database on BRANDLOOP_DATABASE_URL's server (or the
embedded PostgreSQL), migrated, and dropped at the end; a platform's stand-in on loopback; the
machine line they print."""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from brandloop.db import embedded, migrate
from brandloop.db.engine import create_engine
from brandloop.settings import Settings


@dataclass(frozen=True)
class Scratch:
    engine: AsyncEngine
    url: str
    workdir: Path

    def settings(self, **given: Any) -> Settings:
        """Settings for the scratch database (no .env file read)."""
        return Settings(_env_file=None, database_url=self.url, data_dir=self.workdir, **given)


@asynccontextmanager
async def scratch_database(*, migrated: bool = True, pool_size: int = 10) -> AsyncIterator[Scratch]:
    workdir = Path(tempfile.mkdtemp(prefix="brandloop-bench-"))
    server = os.environ.get("BRANDLOOP_DATABASE_URL") or embedded.start(workdir)
    name = f"brandloop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server).set(drivername="postgresql+asyncpg").render_as_string(False))
    async with admin.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
            text(f'CREATE DATABASE "{name}"')
        )
    url = make_url(server).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    engine = create_engine(url, pool_size)
    try:
        if migrated:
            await migrate.upgrade(engine)
        yield Scratch(engine, url, workdir)
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        await admin.dispose()


def machine() -> str:
    return f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


@asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[str]:
    """A platform's stand-in served on loopback while the benchmark runs; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
