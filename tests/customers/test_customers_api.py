"""Customers through the public GraphQL API: writes, validation, tags, filters, paging."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from brandloop.auth.permissions import Role
from support import GraphQLClient, Tenant

CREATE = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    customer { id displayName email phone lifecycleStage tags { name } createdAt updatedAt }
    userErrors { field code message }
  }
}"""
UPDATE = """
mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) {
    customer { id displayName email phone }
    userErrors { field code message }
  }
}"""
DELETE = """
mutation($id: ID!) {
  deleteCustomer(input: {id: $id}) { deletedId userErrors { field code message } }
}"""
ADD_TAGS = """
mutation($ids: [ID!]!, $tags: [String!]!) {
  addCustomerTags(input: {ids: $ids, tags: $tags}) {
    customers { id tags { name kind } }
    userErrors { field code message }
  }
}"""
REMOVE_TAGS = """
mutation($ids: [ID!]!, $tags: [String!]!) {
  removeCustomerTags(input: {ids: $ids, tags: $tags}) {
    customers { id tags { name } }
    userErrors { field code message }
  }
}"""
LIST = """
query($first: Int, $after: String, $filter: CustomerFilterInput) {
  customers(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id displayName email tags { name } } }
  }
}"""
COUNT = "query($filter: CustomerFilterInput) { customers(filter: $filter) { totalCount } }"


async def create(gql: GraphQLClient, key: str, **fields: Any) -> dict[str, Any]:
    data = await gql.data(key, CREATE, {"input": fields})
    payload = data["createCustomer"]
    assert payload["userErrors"] == [], payload
    return payload["customer"]


async def total(gql: GraphQLClient, key: str, flt: dict[str, Any] | None = None) -> int:
    return (await gql.data(key, COUNT, {"filter": flt}))["customers"]["totalCount"]


async def test_create_normalises_email_and_phone(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await create(
        gql, tenant.key, displayName="  Li   Wei ", email=" Li.Wei@Example.CN ", phone="+86 138 1234 5678"
    )
    assert customer["displayName"] == "Li Wei"
    assert customer["email"] == "li.wei@example.cn"
    assert customer["phone"] == "+8613812345678"
    assert customer["lifecycleStage"] == "PROSPECT"
    assert customer["tags"] == []
    fetched = await gql.data(
        tenant.key, "query($id: ID!) { customer(id: $id) { email } }", {"id": customer["id"]}
    )
    assert fetched["customer"] == {"email": "li.wei@example.cn"}


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"displayName": "A", "email": "not-an-email"}, "email", "INVALID_EMAIL"),
        ({"displayName": "A", "email": "a@" + "b" * 250 + ".com"}, "email", "INVALID_LENGTH"),
        ({"displayName": "A", "phone": "13812345678"}, "phone", "INVALID_PHONE"),
        ({"displayName": "A", "phone": "+86 123"}, "phone", "INVALID_PHONE"),
        ({"displayName": "A", "phone": "+" + "1" * 40}, "phone", "INVALID_LENGTH"),
        ({"displayName": "   "}, "displayName", "INVALID_LENGTH"),
        ({"displayName": "x" * 201}, "displayName", "INVALID_LENGTH"),
        ({"displayName": "x" * 100_000}, "displayName", "INVALID_LENGTH"),
    ],
)
async def test_bad_input_is_a_user_error_and_writes_nothing(
    gql: GraphQLClient, tenant: Tenant, fields: dict[str, Any], field: str, code: str
) -> None:
    data = await gql.data(tenant.key, CREATE, {"input": fields})
    payload = data["createCustomer"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert payload["userErrors"][0]["message"]
    assert await total(gql, tenant.key) == 0


async def test_wrong_types_are_graphql_errors(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.key, CREATE, {"input": {"displayName": 42, "email": ["x"]}})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "displayName" in body["errors"][0]["message"] or "email" in body["errors"][0]["message"]


async def test_duplicate_email_within_a_tenant_is_refused(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create(gql, tenant.key, displayName="First", email="same@example.com")
    data = await gql.data(
        tenant.key, CREATE, {"input": {"displayName": "Second", "email": "SAME@example.com"}}
    )
    assert data["createCustomer"]["userErrors"][0]["code"] == "DUPLICATE_EMAIL"
    # Another tenant may have a customer with the same address.
    await create(gql, other_tenant.key, displayName="Elsewhere", email="same@example.com")
    assert await total(gql, tenant.key) == 1


async def test_concurrent_creates_with_one_email_make_one_customer(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    results = await asyncio.gather(
        *(
            gql.data(
                tenant.key, CREATE, {"input": {"displayName": f"Racer {i}", "email": "race@example.com"}}
            )
            for i in range(6)
        )
    )
    created = [r for r in results if r["createCustomer"]["customer"] is not None]
    refused = [r for r in results if r["createCustomer"]["userErrors"]]
    assert len(created) == 1
    assert {r["createCustomer"]["userErrors"][0]["code"] for r in refused} == {"DUPLICATE_EMAIL"}
    assert await total(gql, tenant.key) == 1


async def test_update_changes_only_given_fields_and_null_clears(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await create(
        gql, tenant.key, displayName="Zhang Min", email="zm@example.cn", phone="+8613812345603"
    )
    data = await gql.data(tenant.key, UPDATE, {"input": {"id": customer["id"], "displayName": "Zhang Min 2"}})
    assert data["updateCustomer"]["customer"] == {
        "id": customer["id"],
        "displayName": "Zhang Min 2",
        "email": "zm@example.cn",
        "phone": "+8613812345603",
    }
    data = await gql.data(tenant.key, UPDATE, {"input": {"id": customer["id"], "phone": None}})
    assert data["updateCustomer"]["customer"]["phone"] is None
    assert data["updateCustomer"]["customer"]["email"] == "zm@example.cn"


async def test_failed_update_keeps_the_old_values(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await create(gql, tenant.key, displayName="Keep", email="keep@example.com")
    await create(gql, tenant.key, displayName="Taken", email="taken@example.com")
    data = await gql.data(
        tenant.key,
        UPDATE,
        {"input": {"id": customer["id"], "displayName": "Changed", "email": "taken@example.com"}},
    )
    assert data["updateCustomer"]["userErrors"][0]["code"] == "DUPLICATE_EMAIL"
    fetched = await gql.data(
        tenant.key, "query($id: ID!) { customer(id: $id) { displayName email } }", {"id": customer["id"]}
    )
    assert fetched["customer"] == {"displayName": "Keep", "email": "keep@example.com"}


async def test_unknown_and_malformed_ids_are_user_errors(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await create(gql, tenant.key, displayName="Gone")
    deleted = await gql.data(tenant.key, DELETE, {"id": customer["id"]})
    assert deleted["deleteCustomer"] == {"deletedId": customer["id"], "userErrors": []}
    again = await gql.data(tenant.key, DELETE, {"id": customer["id"]})
    assert again["deleteCustomer"]["userErrors"][0]["code"] == "NOT_FOUND"
    update = await gql.data(tenant.key, UPDATE, {"input": {"id": customer["id"], "displayName": "X"}})
    assert update["updateCustomer"]["userErrors"][0]["code"] == "NOT_FOUND"
    malformed = await gql.data(tenant.key, DELETE, {"id": "not-a-global-id!"})
    assert malformed["deleteCustomer"]["userErrors"][0]["code"] == "INVALID_ID"


async def test_a_second_mutation_failing_keeps_the_first(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(
        tenant.key,
        """mutation {
          a: createCustomer(input: {displayName: "Kept"}) { customer { id } userErrors { code } }
          b: createCustomer(input: {displayName: "Bad", email: "nope"}) { customer { id } userErrors { code } }
        }""",
    )
    assert body["data"]["a"]["customer"] is not None
    assert body["data"]["b"]["userErrors"] == [{"code": "INVALID_EMAIL"}]
    assert await total(gql, tenant.key) == 1


async def test_tags_are_added_once_and_removed(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await create(gql, tenant.key, displayName="A")
    b = await create(gql, tenant.key, displayName="B")
    data = await gql.data(tenant.key, ADD_TAGS, {"ids": [a["id"], b["id"]], "tags": ["VIP", "wechat", "vip"]})
    payload = data["addCustomerTags"]
    assert payload["userErrors"] == []
    assert [[t["name"] for t in c["tags"]] for c in payload["customers"]] == [["VIP", "wechat"]] * 2
    assert payload["customers"][0]["tags"][0]["kind"] == "STATIC"
    # Adding again (any case) changes nothing.
    data = await gql.data(tenant.key, ADD_TAGS, {"ids": [a["id"]], "tags": ["vip"]})
    assert [t["name"] for t in data["addCustomerTags"]["customers"][0]["tags"]] == ["VIP", "wechat"]
    data = await gql.data(tenant.key, REMOVE_TAGS, {"ids": [a["id"]], "tags": ["vip"]})
    assert data["removeCustomerTags"]["customers"][0]["tags"] == [{"name": "wechat"}]
    tags = await gql.data(tenant.key, "{ tags { totalCount edges { node { name } } } }")
    assert tags["tags"]["totalCount"] == 2


async def test_tagging_with_one_unknown_id_changes_nothing(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await create(gql, tenant.key, displayName="Mine")
    theirs = await create(gql, other_tenant.key, displayName="Theirs")
    data = await gql.data(tenant.key, ADD_TAGS, {"ids": [mine["id"], theirs["id"]], "tags": ["x"]})
    assert data["addCustomerTags"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert await total(gql, tenant.key, {"tags": ["x"]}) == 0
    tags = await gql.data(tenant.key, "{ tags { totalCount } }")
    assert tags["tags"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("tags", "code"),
    [([], "INVALID_COUNT"), (["x" * 65], "INVALID_LENGTH"), ([f"t{i}" for i in range(51)], "INVALID_COUNT")],
)
async def test_bad_tag_input(gql: GraphQLClient, tenant: Tenant, tags: list[str], code: str) -> None:
    customer = await create(gql, tenant.key, displayName="T")
    data = await gql.data(tenant.key, ADD_TAGS, {"ids": [customer["id"]], "tags": tags})
    assert data["addCustomerTags"]["userErrors"][0]["code"] == code


async def test_filters_search_tags_and_stage(gql: GraphQLClient, tenant: Tenant) -> None:
    li = await create(gql, tenant.key, displayName="Li Wei", email="li@example.cn")
    emma = await create(
        gql, tenant.key, displayName="Emma Brown", email="emma@example.com", phone="+447911123456"
    )
    await create(gql, tenant.key, displayName="100% Cotton_Fan")
    await gql.data(tenant.key, ADD_TAGS, {"ids": [li["id"], emma["id"]], "tags": ["vip"]})
    await gql.data(tenant.key, ADD_TAGS, {"ids": [emma["id"]], "tags": ["amazon"]})

    async def names(flt: dict[str, Any]) -> list[str]:
        data = await gql.data(tenant.key, LIST, {"filter": flt})
        return [e["node"]["displayName"] for e in data["customers"]["edges"]]

    assert await names({"search": "EMMA"}) == ["Emma Brown"]
    assert await names({"search": "example.cn"}) == ["Li Wei"]
    assert await names({"search": "+447911"}) == ["Emma Brown"]
    assert await names({"search": "%"}) == ["100% Cotton_Fan"]  # wildcards are literal
    assert await names({"search": "_"}) == ["100% Cotton_Fan"]
    assert await names({"tags": ["VIP"]}) == ["Li Wei", "Emma Brown"]
    assert await names({"tags": ["vip", "amazon"]}) == ["Emma Brown"]
    assert await names({"tags": ["vip"], "search": "li"}) == ["Li Wei"]
    assert await names({"lifecycleStage": "PROSPECT"}) == ["Li Wei", "Emma Brown", "100% Cotton_Fan"]
    assert await names({"lifecycleStage": "ACTIVE"}) == []
    assert await total(gql, tenant.key, {"tags": ["vip"]}) == 2
    body = await gql(tenant.key, LIST, {"filter": {"search": "x" * 201}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_keyset_paging_walks_every_customer_once(gql: GraphQLClient, tenant: Tenant) -> None:
    for i in range(7):
        await create(gql, tenant.key, displayName=f"C{i}")
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await gql.data(tenant.key, LIST, {"first": 3, "after": after}))["customers"]
        assert data["totalCount"] == 7
        assert data["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["displayName"] for e in data["edges"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
        assert after == data["edges"][-1]["cursor"]
    assert seen == [f"C{i}" for i in range(7)]
    assert pages == 3


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_page_size_is_bounded(gql: GraphQLClient, tenant: Tenant, first: int) -> None:
    body = await gql(tenant.key, LIST, {"first": first})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 1 and 100" in body["errors"][0]["message"]


async def test_a_forged_cursor_is_refused(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.key, LIST, {"after": "bm90LWEtY3Vyc29y"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cursor" in body["errors"][0]["message"]


async def test_node_returns_customers(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await create(gql, tenant.key, displayName="Node")
    data = await gql.data(
        tenant.key,
        "query($id: ID!) { node(id: $id) { __typename id ... on Customer { displayName } } }",
        {"id": customer["id"]},
    )
    assert data["node"] == {"__typename": "Customer", "id": customer["id"], "displayName": "Node"}


async def test_a_page_of_50_with_tags_takes_a_fixed_number_of_queries(
    gql: GraphQLClient, tenant: Tenant, app: Starlette
) -> None:
    ids = [(await create(gql, tenant.key, displayName=f"N{i}"))["id"] for i in range(50)]
    await gql.data(tenant.key, ADD_TAGS, {"ids": ids, "tags": ["a", "b"]})
    statements: list[str] = []
    engine = app.state.runtime.engine.sync_engine
    drivers = []

    def through_sqlalchemy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def through_the_driver(record: Any) -> None:  # the hot path's statements go straight to asyncpg
        if record.query.rstrip(";") not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(record.query)

    def on_checkout(dbapi_connection: Any, *args: Any) -> None:
        drivers.append(dbapi_connection.driver_connection)
        drivers[-1].add_query_logger(through_the_driver)

    event.listen(engine, "before_cursor_execute", through_sqlalchemy)
    event.listen(engine, "checkout", on_checkout)
    try:
        data = await gql.data(tenant.key, LIST, {"first": 50})
    finally:
        event.remove(engine, "before_cursor_execute", through_sqlalchemy)
        event.remove(engine, "checkout", on_checkout)
        for connection in drivers:
            connection.remove_query_logger(through_the_driver)
    assert len(data["customers"]["edges"]) == 50
    assert all(len(e["node"]["tags"]) == 2 for e in data["customers"]["edges"])
    # Authentication takes 1 (a function reads the key and enters its tenant); the planner answers
    # the page, its tags and its count with 1, whatever the page size.
    assert len(statements) == 2, [s[:70] for s in statements]
    assert sum("customer_tags" in s for s in statements) == 1


async def test_viewer_cannot_write(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.keys[Role.VIEWER], CREATE, {"input": {"displayName": "Nope"}})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "customers:write" in body["errors"][0]["message"]
    assert await total(gql, tenant.key) == 0
    marketer = await gql.data(tenant.keys[Role.MARKETER], CREATE, {"input": {"displayName": "Yes"}})
    assert marketer["createCustomer"]["customer"] is not None
