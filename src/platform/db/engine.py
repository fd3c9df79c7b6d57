"""One engine per process, for the configured PostgreSQL or the embedded one."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from brandloop.db import embedded
from brandloop.settings import Settings


def resolve_url(settings: Settings) -> str:
    """The database URL, starting the embedded PostgreSQL when none is configured."""
    url = settings.database_url or embedded.start(settings.data_dir)
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it would cost a round trip on every request. Recycling bounds the age of
        # a connection instead, and a dropped one fails its request, not the next ones.
        pool_recycle=1800,
        connect_args={
            "server_settings": {
                # Named so operators can tell our connections apart in pg_stat_activity.
                "application_name": "brandloop",
                # Statements are prepared once per connection; a generic plan made without the
                # values (a date range, a tenant's size) can be far worse than planning each time.
                "plan_cache_mode": "force_custom_plan",
            }
        },
    )


async def refresh_statistics(engine: AsyncEngine, tables: Sequence[str]) -> None:
    """ANALYZE, as the owner, after a bulk load: plans made while a table was nearly empty
    (foreign-key checks included) turn into scans that slow every later row."""
    async with engine.begin() as conn:
        await conn.execute(text(f"ANALYZE {', '.join(tables)}"))
