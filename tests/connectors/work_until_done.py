"""A worker for the kill tests: runs a job's rounds for a tenant, as the job worker does
(`sync`: connections.sync, `catch_up`: connections.catch_up), printing a line when ready and
after each committed round, until no round has more and no pushed event waits."""

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

ROUNDS = {"sync": sync.sync_round, "catch_up": sync.catch_up_round}
PENDING = text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")


async def main(job: str, tenant_id: uuid.UUID) -> None:
    settings = Settings()
    engine = create_engine(str(settings.database_url))
    print("ready", flush=True)
    try:
        while True:
            async with tenant_transaction(engine, tenant_id) as session, Platforms() as platforms:
                more = await ROUNDS[job](session, vault(settings), platforms, now=datetime.now(UTC))
                pending = await session.scalar(PENDING)
            print("round", flush=True)
            if not more and not pending:
                return
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], uuid.UUID(sys.argv[2])))
