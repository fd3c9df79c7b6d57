"""The SQL functions that planned reads use write values exactly as the Python side does."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.graphql.relay import global_id

# Short, typical and long enough for encode() to break the base64 into lines.
TYPE_NAMES = ["k", "Order", "CustomerIdentity", "LoyaltyLedgerEntryWithAVeryLongTypeName"]


async def test_global_ids_match_the_api(engine: AsyncEngine) -> None:
    rng = random.Random(7)
    cases = [(name, uuid.UUID(int=rng.getrandbits(128))) for name in TYPE_NAMES for _ in range(200)]
    async with engine.connect() as conn:
        written = (
            await conn.execute(
                text(
                    "SELECT brandloop_global_id(n, i) FROM unnest(CAST(:n AS text[]), CAST(:i AS uuid[])) AS u(n, i)"
                ),
                {"n": [n for n, _ in cases], "i": [i for _, i in cases]},
            )
        ).scalars()
        assert list(written) == [global_id(name, pk) for name, pk in cases]


async def test_times_match_isoformat(engine: AsyncEngine) -> None:
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    times = [
        base,
        base + timedelta(microseconds=1),
        base + timedelta(microseconds=500_000),
        base.replace(year=1999),
    ]
    async with engine.connect() as conn:
        written = (
            await conn.execute(
                text(
                    "SELECT brandloop_iso_time(t) FROM unnest(CAST(:t AS timestamptz[])) WITH ORDINALITY AS u(t, n) ORDER BY n"
                ),
                {"t": times},
            )
        ).scalars()
        assert list(written) == [t.isoformat() for t in times]
