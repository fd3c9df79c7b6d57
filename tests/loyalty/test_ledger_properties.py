"""Property: whatever happens, in whatever order, the books agree.

Hypothesis draws sequences of orders paid, refunded in part or whole, cancelled and reinstated,
adjustments, redemptions and their cancellations, event awards and expiry runs; after each
sequence every account's cached balance equals the sum of its ledger, its lots hold exactly its
balance, and no balance went below zero except through a reversal.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from loyalty_support import NOW, adjust, at, backdate_rules, no_drift, order, program, rules
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.db.engine import create_engine
from brandloop.db.session import tenant_transaction
from brandloop.loyalty import ledger
from brandloop.settings import Settings
from support import GraphQLClient, make_tenant

TOTAL = 10_000

operations = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 3), st.sampled_from(["PAID", "CANCELLED", "REFUNDED"])),
    st.tuples(st.just("refund"), st.integers(0, 3), st.integers(1, TOTAL - 1)),
    st.tuples(st.just("adjust"), st.integers(-150, 150).filter(bool)),
    st.tuples(st.just("redeem")),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("award")),
    st.tuples(st.just("expire"), st.integers(0, 90)),
)


@examples(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operations, min_size=1, max_size=20))
def test_the_books_always_agree(
    engine: AsyncEngine, settings: Settings, steps: list[tuple[Any, ...]]
) -> None:
    # `engine` migrated the database; each example runs on its own event loop with its own app.
    asyncio.run(_run(settings, steps))


async def _run(app_settings: Settings, steps: list[tuple[Any, ...]]) -> None:
    engine = create_engine(app_settings.database_url)
    app = create_app(app_settings)
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            await _scenario(engine, GraphQLClient(client), steps)
    finally:
        await engine.dispose()


async def _scenario(engine: AsyncEngine, gql: GraphQLClient, steps: list[tuple[Any, ...]]) -> None:
    tenant = await make_tenant(engine)
    program_id = await program(gql, tenant, expiryPolicy="MONTHS", expiryPeriod=1)
    await rules(gql, tenant, program_id, pointsPerUnit="1", events=[{"kind": "REVIEW", "points": 25}])
    await backdate_rules(engine, tenant, days=60)
    customer = (await order(gql, tenant, "first", placed=-60 * 24 * 50))["order"]["customer"]["id"]
    reward_id = (
        await gql.data(
            tenant.key,
            """mutation($p: ID!) { createLoyaltyReward(input: {programId: $p, name: "Cup", kind: GIFT,
               pointsCost: 40}) { reward { id } } }""",
            {"p": program_id},
        )
    )["createLoyaltyReward"]["reward"]["id"]
    versions: dict[int, int] = {}
    redemptions: list[str] = []
    for n, step in enumerate(steps):
        match step:
            case ("order", number, status):
                versions[number] = versions.get(number, 0) + 1
                refunded = TOTAL if status == "REFUNDED" else 0
                await order(
                    gql,
                    tenant,
                    f"o{number}",
                    placed=-60 * 24 * (40 - number * 10),
                    status=status,
                    refunded=refunded,
                    version=versions[number],
                )
            case ("refund", number, amount):
                versions[number] = versions.get(number, 0) + 1
                await order(
                    gql,
                    tenant,
                    f"o{number}",
                    placed=-60 * 24 * (40 - number * 10),
                    status="PARTIALLY_REFUNDED",
                    refunded=amount,
                    version=versions[number],
                )
            case ("adjust", points):
                await adjust(gql, tenant, program_id, customer, points, f"adjust-{n}")
            case ("redeem",):
                done = await gql.data(
                    tenant.key,
                    """mutation($c: ID!, $r: ID!, $k: String!) { redeemReward(input: {customerId: $c,
                       rewardId: $r, idempotencyKey: $k}) { redemption { id } } }""",
                    {"c": customer, "r": reward_id, "k": f"redeem-{n}"},
                )
                if done["redeemReward"]["redemption"]:
                    redemptions.append(done["redeemReward"]["redemption"]["id"])
            case ("cancel", which) if redemptions:
                await gql.data(
                    tenant.key,
                    'mutation($id: ID!) { cancelRedemption(input: {id: $id, reason: "test"}) { userErrors { code } } }',
                    {"id": redemptions[which % len(redemptions)]},
                )
            case ("award",):
                await gql.data(
                    tenant.key,
                    """mutation($c: ID!, $k: String!, $t: DateTime!) { awardEventPoints(input: {customerId: $c,
                       eventKind: REVIEW, idempotencyKey: $k, occurredAt: $t}) { userErrors { code } } }""",
                    {"c": customer, "k": f"award-{n}", "t": at(-60 * 24 * 5)},
                )
            case ("expire", days):
                async with tenant_transaction(engine, tenant.id) as session:
                    await ledger.expire_points(session, now=NOW + timedelta(days=days - 30))
    await no_drift(gql, tenant)
    async with tenant_transaction(engine, tenant.id) as session:
        # Below zero only through a reversal (or a transfer of a debt): never by spending.
        overdrawn = await session.scalars(
            text(
                """SELECT kind FROM (SELECT kind, delta, sum(delta) OVER (PARTITION BY account_id ORDER BY id) AS after
                                      FROM loyalty_ledger) e
                    WHERE delta < 0 AND after < 0"""
            )
        )
        assert set(overdrawn) <= {"reverse", "transfer"}
