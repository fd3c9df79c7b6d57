"""A worker for the WeChat kill test: runs the job `connections.catch_up` for a tenant, printing
a line when ready and after each committed run, until no pushed event is left to follow."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from brandloop.connections import sync
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.engine import create_engine
from brandloop.db.session import tenant_transaction
from brandloop.settings import Settings

PENDING = text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")


async def main(tenant_id: uuid.UUID) -> None:
    settings = Settings()
    engine = create_engine(str(settings.database_url))
    print("ready", flush=True)
    try:
        while True:
            async with tenant_transaction(engine, tenant_id) as session, Platforms() as platforms:
                await sync.catch_up_round(session, vault(settings), platforms, now=datetime.now(UTC))
                pending = await session.scalar(PENDING)
            print("round", flush=True)
            if not pending:
                return
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
