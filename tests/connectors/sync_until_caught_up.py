"""A worker for the kill test: pulls a tenant's connections round after round, as the job
`connections.sync` does, printing a line after each committed round, until all have caught up."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

from brandloop.connections import sync
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.engine import create_engine
from brandloop.db.session import tenant_transaction
from brandloop.settings import Settings


async def main(tenant_id: uuid.UUID) -> None:
    settings = Settings()
    engine = create_engine(str(settings.database_url))
    try:
        while True:
            async with tenant_transaction(engine, tenant_id) as session, Platforms() as platforms:
                more = await sync.sync_round(session, vault(settings), platforms, now=datetime.now(UTC))
            print("round", flush=True)
            if not more:
                return
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
