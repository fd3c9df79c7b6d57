"""Every operation of a corpus answered planned (one SQL statement) and unplanned (resolvers):
the same JSON, key order included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from nps_support import survey
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.auth.permissions import Permission
from brandloop.graphql.planner import plan_key
from brandloop.settings import Settings
from support import GraphQLClient, Tenant, make_tenant

RECORD = "mutation($input: RecordOrderInput!) { recordOrder(input: $input) { order { id customer { id } } userErrors { code } } }"

CUSTOMER_FIELDS = """
  __typename id displayName email phone lifecycleStage valueTier createdAt updatedAt erasedAt firstOrderAt lastOrderAt
  tags { __typename id name kind }
  identities { kind value source createdAt }
"""
ORDER_FIELDS = """
  __typename id channel externalId status placedAt updatedAt recordedAt
  subtotal { amount currency } discount { amount } shipping { amount currency } tax { amount }
  total { __typename amount currency } refunded { amount }
  lines { __typename lineNo sku productName category quantity unitPrice { amount currency } lineTotal { amount } }
"""

LOYALTY_FIELDS = """
  __typename enrolledAt tierReviewAt
  program { __typename id name pointsName status channels enrolment expiryPolicy expiryPeriod pendingDays pointCost
            tierWindowDays tierReviewMonths createdAt }
  balance { total available pending earned spent expired }
  ledger(first: 5) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
    __typename id points kind source sourceId effectiveAt expiresAt ruleVersion reason actor recordedAt } } }
"""

CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "page",
        f"{{ customers {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} edges {{ cursor node {{ {CUSTOMER_FIELDS} }} }} }} }}",
        {},
    ),
    (
        "page of 2",
        "query($n: Int) { customers(first: $n) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }",
        {"n": 2},
    ),
    (
        "nested orders",
        f"{{ customers(first: 50) {{ edges {{ node {{ id tags {{ name }} orders(first: 5) {{ totalCount pageInfo {{ hasNextPage endCursor startCursor hasPreviousPage __typename }} edges {{ cursor node {{ {ORDER_FIELDS} }} }} __typename }} }} }} }} }}",
        {},
    ),
    (
        "aliases",
        "{ a: customers(first: 1) { edges { node { name: displayName n2: displayName } } } b: customers(first: 2) { total: totalCount } }",
        {},
    ),
    (
        "fragments",
        "query { customers { ...page } } fragment page on CustomerConnection { edges { node { ...who ... on Customer { email } } } } fragment who on Customer { id displayName }",
        {},
    ),
    (
        "repeated fields merge",
        "{ customers { edges { node { id } } edges { node { email tags { id } } node { tags { name } } } } }",
        {},
    ),
    (
        "include and skip",
        "query($yes: Boolean!, $no: Boolean!) { customers { edges { node { id email @include(if: $yes) phone @include(if: $no) displayName @skip(if: $yes) } } totalCount @skip(if: $no) } }",
        {"yes": True, "no": False},
    ),
    (
        "search",
        "query($f: CustomerFilterInput) { customers(filter: $f) { totalCount edges { node { displayName } } } }",
        {"f": {"search": "li"}},
    ),
    (
        "tags filter",
        '{ customers(filter: {tags: ["vip"]}) { totalCount edges { node { displayName tags { name } } } } }',
        {},
    ),
    (
        "stage filter",
        "{ customers(filter: {lifecycleStage: PROSPECT}) { totalCount edges { node { displayName } } } }",
        {},
    ),
    (
        "nothing found",
        '{ customers(filter: {search: "nobody-at-all"}) { totalCount pageInfo { hasNextPage startCursor endCursor } edges { node { id } } } }',
        {},
    ),
    (
        "orders page",
        f"{{ orders(first: 3) {{ totalCount pageInfo {{ hasNextPage }} edges {{ cursor node {{ {ORDER_FIELDS} customer {{ id displayName }} }} }} }} }}",
        {},
    ),
    (
        "orders by channel",
        '{ orders(filter: {channel: "tiktok"}) { totalCount edges { node { externalId } } } }',
        {},
    ),
    (
        "orders by status and time",
        '{ orders(filter: {status: COMPLETED, placedAfter: "2026-10-05T00:00:00Z", placedBefore: "2026-11-30T00:00:00Z"}) { edges { node { externalId placedAt } } } }',
        {},
    ),
    ("max page", "{ orders(first: 100) { edges { node { id } } } }", {}),
    (
        "loyalty",
        f"{{ customers {{ edges {{ node {{ id loyalty {{ {LOYALTY_FIELDS} }} }} }} }} }}",
        {},
    ),
    (
        "ledger pages",
        "{ customers(first: 3) { edges { node { loyalty { ledger(first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { points } } } } } } } }",
        {},
    ),
]


@pytest.fixture(scope="module")
async def unplanned(settings: Settings, engine: AsyncEngine) -> AsyncIterator[GraphQLClient]:
    app = create_app(settings.model_copy(update={"planner": False}))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield GraphQLClient(client)


@pytest.fixture(scope="module")
async def shop(engine: AsyncEngine, client: httpx.AsyncClient) -> dict[str, Any]:
    """A tenant with customers, tags, identities, orders in two currencies, and a merged profile."""
    tenant = await make_tenant(engine)
    gql = GraphQLClient(client)
    ids: dict[str, str] = {}
    buyers = [
        ("Li Wei", {"buyerId": "sp-1", "email": "li@example.cn", "phone": "+8613900001111"}, "shopee", "CNY"),
        ("Wang Fang", {"buyerId": "tt-1", "email": "wang@example.cn"}, "tiktok", "CNY"),
        ("Emma Brown", {"buyerId": "amz-1", "email": "emma@example.com"}, "amazon", "USD"),
        ("Lin", {"buyerId": "sp-2"}, "shopee", "SGD"),
    ]
    for n in range(7):
        name, buyer, channel, currency = buyers[n % len(buyers)]
        data = await gql.data(
            tenant.key,
            RECORD,
            {
                "input": {
                    "channel": channel,
                    "externalId": f"O-{n}",
                    "status": "COMPLETED" if n % 2 else "PAID",
                    "currency": currency,
                    "total": 1000 + n,
                    "discount": n,
                    "placedAt": f"2026-10-{n + 1:02d}T08:30:00.{n * 7:06d}+08:00",
                    "lines": [
                        {
                            "sku": f"S-{n}",
                            "productName": f"Tea “{n}”",
                            "quantity": 1 + n % 3,
                            "unitPrice": 300,
                        },
                        {
                            "sku": "CUP",
                            "productName": "Cup",
                            "category": "teaware",
                            "quantity": 1,
                            "unitPrice": 100,
                        },
                    ],
                    "buyer": {"name": name, **buyer},
                }
            },
        )
        ids[f"O-{n}"] = data["recordOrder"]["order"]["id"]
        ids[name] = data["recordOrder"]["order"]["customer"]["id"]
    await gql.data(
        tenant.key, 'mutation { createCustomer(input: {displayName: "Prospect Pat"}) { customer { id } } }'
    )
    await gql.data(
        tenant.key,
        'mutation($ids: [ID!]!) { addCustomerTags(input: {ids: $ids, tags: ["vip", "Tea Lover"]}) { userErrors { code } } }',
        {"ids": [ids["Li Wei"], ids["Emma Brown"]]},
    )
    merged = await gql.data(
        tenant.key, 'mutation { createCustomer(input: {displayName: "Li Wei (old)"}) { customer { id } } }'
    )
    ids["merged"] = merged["createCustomer"]["customer"]["id"]
    await gql.data(
        tenant.key,
        "mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { userErrors { code } } }",
        {"s": ids["Li Wei"], "m": [ids["merged"]]},
    )
    await _loyalty(gql, tenant, ids)
    await _survey(gql, client, tenant, ids)
    return {"tenant": tenant, "ids": ids}


async def _survey(gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, ids: dict[str, str]) -> None:
    """A survey answered by three customers: a promoter, a passive and a detractor with a comment."""
    ids["survey"] = await survey(gql, tenant)
    people = [ids["Li Wei"], ids["Wang Fang"], ids["Emma Brown"]]
    for person in people:
        await gql.data(
            tenant.key,
            """mutation($c: ID!) { recordConsent(input: {customerId: $c, channel: "wechat", purpose: SURVEYS,
                 granted: true, source: "test"}) { userErrors { code } } }""",
            {"c": person},
        )
    invited = await gql.data(
        tenant.key,
        """mutation($s: ID!, $c: [ID!]!) { inviteToSurvey(input: {surveyId: $s, customerIds: $c, channel: "wechat",
             campaignKey: "k"}) { invitations { link } } }""",
        {"s": ids["survey"], "c": people},
    )
    for invitation, (score, comment) in zip(
        invited["inviteToSurvey"]["invitations"],
        [(10, None), (7, "ok"), (2, "“late”, <b>rude</b>")],
        strict=True,
    ):
        token = invitation["link"].rsplit("/", 1)[1]
        answered = await client.post(f"/surveys/{token}", json={"score": score, "comment": comment})
        assert answered.status_code == 201


async def _loyalty(gql: GraphQLClient, tenant: Tenant, ids: dict[str, str]) -> None:
    """Two programs; points granted, taken, redeemed and given back; one program pending."""
    programs = []
    for name, settings in (
        ("Tea Club", {"pointCost": "2.5", "channels": ["shopee", "tiktok"]}),
        ("Cups", {"pendingDays": 30, "expiryPolicy": "YEAR_END", "expiryPeriod": 2}),
    ):
        data = await gql.data(
            tenant.key,
            "mutation($i: LoyaltyProgramInput!) { createLoyaltyProgram(input: $i) { program { id } } }",
            {"i": {"name": name, "pointsName": "Leaves", **settings}},
        )
        programs.append(data["createLoyaltyProgram"]["program"]["id"])
    adjust = """mutation($i: AdjustPointsInput!) { adjustPoints(input: $i) { userErrors { code } } }"""
    for n, (program, customer, points) in enumerate(
        [(0, "Li Wei", 120), (0, "Li Wei", -20), (1, "Li Wei", 70), (0, "Emma Brown", 50), (0, "Li Wei", 5)]
    ):
        await gql.data(
            tenant.key,
            adjust,
            {
                "i": {
                    "programId": programs[program],
                    "customerId": ids[customer],
                    "points": points,
                    "reason": f"r{n}",
                    "idempotencyKey": f"k{n}",
                }
            },
        )
    reward = await gql.data(
        tenant.key,
        """mutation($p: ID!) { createLoyaltyReward(input: {programId: $p, name: "Cup", kind: GIFT, pointsCost: 30}) {
             reward { id } } }""",
        {"p": programs[0]},
    )
    redeem = """mutation($c: ID!, $r: ID!, $k: String!) { redeemReward(input: {customerId: $c, rewardId: $r,
                idempotencyKey: $k}) { redemption { id } } }"""
    reward_id = reward["createLoyaltyReward"]["reward"]["id"]
    first = await gql.data(tenant.key, redeem, {"c": ids["Li Wei"], "r": reward_id, "k": "x1"})
    await gql.data(tenant.key, redeem, {"c": ids["Li Wei"], "r": reward_id, "k": "x2"})
    await gql.data(
        tenant.key,
        'mutation($id: ID!) { cancelRedemption(input: {id: $id, reason: "broken"}) { userErrors { code } } }',
        {"id": first["redeemReward"]["redemption"]["id"]},
    )


async def both(
    planned: GraphQLClient, unplanned: GraphQLClient, key: str, query: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    a = await planned(key, query, variables)
    b = await unplanned(key, query, variables)
    return a, b


@pytest.mark.parametrize(("name", "query", "variables"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_planned_and_unplanned_answers_are_identical(
    gql: GraphQLClient,
    unplanned: GraphQLClient,
    shop: dict[str, Any],
    name: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    planned, ordinary = await both(gql, unplanned, shop["tenant"].key, query, variables)
    assert "errors" not in planned and "errors" not in ordinary, (planned, ordinary)
    assert planned["extensions"].get("planned") is True
    assert "planned" not in ordinary["extensions"]
    assert json.dumps(planned["data"]) == json.dumps(ordinary["data"])


async def test_paging_with_cursors_agrees(
    gql: GraphQLClient, unplanned: GraphQLClient, shop: dict[str, Any]
) -> None:
    key = shop["tenant"].key
    query = "query($after: String) { orders(first: 2, after: $after) { pageInfo { hasNextPage hasPreviousPage endCursor } edges { node { externalId } } } }"
    after = None
    pages = 0
    while True:
        planned, ordinary = await both(gql, unplanned, key, query, {"after": after})
        assert planned["data"] == ordinary["data"]
        pages += 1
        info = planned["data"]["orders"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert pages == 4


async def test_single_objects_agree(
    gql: GraphQLClient, unplanned: GraphQLClient, shop: dict[str, Any], other_tenant: Tenant
) -> None:
    key, ids = shop["tenant"].key, shop["ids"]
    cases = [
        (
            f"query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} orders {{ totalCount edges {{ node {{ externalId }} }} }} }} }}",
            {"id": ids["Li Wei"]},
        ),
        ("query($id: ID!) { customer(id: $id) { id displayName } }", {"id": ids["merged"]}),
        (
            f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} customer {{ {CUSTOMER_FIELDS} }} }} }}",
            {"id": ids["O-2"]},
        ),
        (
            f"query($id: ID!) {{ customer(id: $id) {{ id loyalty {{ {LOYALTY_FIELDS} }} }} }}",
            {"id": ids["Li Wei"]},
        ),
        (
            """query($id: ID!) { survey(id: $id) { __typename id name status channels trigger linkDays createdAt
                 responses(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
                   __typename id score category comment answers channel createdAt customer { id displayName } } } } } }""",
            {"id": ids["survey"]},
        ),
    ]
    for query, variables in cases:
        planned, ordinary = await both(gql, unplanned, key, query, variables)
        assert planned["extensions"].get("planned") is True
        assert json.dumps(planned["data"]) == json.dumps(ordinary["data"])
    # Another tenant sees null through both paths.
    planned, ordinary = await both(gql, unplanned, other_tenant.key, cases[0][0], cases[0][1])
    assert planned["data"] == ordinary["data"] == {"customer": None}


async def test_what_the_plans_do_not_cover_is_answered_the_ordinary_way(
    gql: GraphQLClient, unplanned: GraphQLClient, shop: dict[str, Any]
) -> None:
    key = shop["tenant"].key
    for query in [
        "{ customers { edges { node { id rfm { frequency } consents { channel } } } } }",  # fields without a plan
        "{ customers { totalCount } viewer { role } }",  # a root without a plan
        "{ customers(first: 1) { edges { node { mergedInto { id } orders { edges { node { totalInReportingCurrency { amount } } } } } } } }",
    ]:
        planned, ordinary = await both(gql, unplanned, key, query, {})
        assert "planned" not in planned["extensions"]
        assert planned["data"] == ordinary["data"]


async def test_errors_are_the_ordinary_paths_errors(
    gql: GraphQLClient, unplanned: GraphQLClient, shop: dict[str, Any]
) -> None:
    key = shop["tenant"].key
    for query in [
        "{ customers(first: 101) { totalCount } }",
        '{ customers(after: "bm9wZQ") { totalCount } }',
        '{ customers(filter: {search: "' + "x" * 201 + '"}) { totalCount } }',
        '{ order(id: "not-an-id") { id } }',
    ]:
        planned, ordinary = await both(gql, unplanned, key, query, {})
        assert planned == ordinary
        assert planned["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_planned_path_is_isolated_by_tenant(
    gql: GraphQLClient, shop: dict[str, Any], other_tenant: Tenant
) -> None:
    body = await gql(
        other_tenant.key, "{ customers { totalCount edges { node { id } } } orders { totalCount } }"
    )
    assert body["extensions"]["planned"] is True
    assert body["data"] == {"customers": {"totalCount": 0, "edges": []}, "orders": {"totalCount": 0}}


async def test_a_plan_compiled_for_one_tenant_serves_another_its_own_data(
    gql: GraphQLClient, shop: dict[str, Any], engine: AsyncEngine
) -> None:
    query = "{ customers(first: 100) { totalCount edges { node { displayName } } } }"
    first = await gql(shop["tenant"].key, query)
    other = await make_tenant(engine)
    await gql.data(
        other.key, 'mutation { createCustomer(input: {displayName: "Only Mine"}) { customer { id } } }'
    )
    second = await gql(other.key, query)
    assert first["extensions"]["planned"] is True and second["extensions"]["planned"] is True
    assert second["data"] == {
        "customers": {"totalCount": 1, "edges": [{"node": {"displayName": "Only Mine"}}]}
    }
    assert first["data"]["customers"]["totalCount"] == 5


async def test_a_repeated_request_answers_from_its_cached_plan(
    gql: GraphQLClient, shop: dict[str, Any], engine: AsyncEngine
) -> None:
    query = "query($n: Int) { orders(first: $n) { totalCount edges { node { externalId } } } }"
    first = await gql(shop["tenant"].key, query, {"n": 3})
    again = await gql(shop["tenant"].key, query, {"n": 3})
    assert again == first
    assert again["extensions"] == {"cost": {"requested": 7, "maximum": 50_000}, "planned": True}
    # New data is seen at once: plans hold SQL, never results.
    await gql.data(
        shop["tenant"].key,
        """mutation { recordOrder(input: {channel: "shopee", externalId: "O-NEW", status: PAID, currency: "CNY",
             total: 1, placedAt: "2026-11-01T00:00:00Z", lines: []}) { userErrors { code } } }""",
    )
    after = await gql(shop["tenant"].key, query, {"n": 3})
    assert after["data"]["orders"]["totalCount"] == first["data"]["orders"]["totalCount"] + 1


async def test_a_plan_needs_the_permissions_of_its_nested_fields(
    gql: GraphQLClient, shop: dict[str, Any], app: Any
) -> None:
    query = "{ customers(first: 1) { edges { node { id loyalty { balance { total } } } } } }"
    body = await gql(shop["tenant"].key, query)
    assert body["extensions"]["planned"] is True
    loyalty = body["data"]["customers"]["edges"][0]["node"]["loyalty"]
    assert loyalty == [{"balance": {"total": 75}}, {"balance": {"total": 70}}]  # Li Wei's two accounts
    plan = app.state.runtime.plans[plan_key(query, None, None)]
    assert plan.permissions == {Permission.CUSTOMERS_READ, Permission.LOYALTY_READ}
