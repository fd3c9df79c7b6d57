"""Merging profiles and undoing it: everything moves together, and comes back exactly."""

from __future__ import annotations

import asyncio
from typing import Any

from support import GraphQLClient, Tenant, buy

PROFILE = """
query($id: ID!) { customer(id: $id) {
  id displayName email phone lifecycleStage mergedInto { id }
  identities { kind value source }
  tags { name }
  orders(first: 100) { totalCount edges { node { id externalId } } }
} }"""
MERGE = """
mutation($survivor: ID!, $merged: [ID!]!) {
  mergeCustomers(input: {survivorId: $survivor, mergedIds: $merged}) {
    customer { id } merges { rule actor moved { what count } } userErrors { field code message }
  }
}"""
UNMERGE = """
mutation($id: ID!) {
  unmergeCustomer(input: {id: $id}) { customer { id mergedInto { id } } survivor { id } userErrors { field code } }
}"""


async def order(
    gql: GraphQLClient, tenant: Tenant, external_id: str, buyer: dict[str, Any], channel: str = "shopee"
) -> str | None:
    return await buy(gql, tenant, external_id, buyer, channel=channel)


async def snapshot(gql: GraphQLClient, tenant: Tenant, customer_id: str) -> dict[str, Any]:
    data = (await gql.data(tenant.key, PROFILE, {"id": customer_id}))["customer"]
    data["identities"] = sorted((i["kind"], i["value"], i["source"]) for i in data["identities"])
    return data


async def tag(gql: GraphQLClient, tenant: Tenant, customer_id: str, *names: str) -> None:
    await gql.data(
        tenant.key,
        "mutation($id: ID!, $t: [String!]!) { addCustomerTags(input: {ids: [$id], tags: $t}) { userErrors { code } } }",
        {"id": customer_id, "t": list(names)},
    )


async def test_merge_then_unmerge_restores_the_exact_prior_state(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await order(gql, tenant, "A-1", {"name": "Li Wei", "email": "li@example.cn", "buyerId": "sp-1"})
    await order(gql, tenant, "A-2", {"buyerId": "sp-1"}, channel="shopee")
    b = await order(
        gql, tenant, "B-1", {"name": "Wei Li", "phone": "+8613800001111", "buyerId": "tt-1"}, channel="tiktok"
    )
    await tag(gql, tenant, a, "vip", "shared")
    await tag(gql, tenant, b, "tiktok-fan", "shared")
    before_a, before_b = await snapshot(gql, tenant, a), await snapshot(gql, tenant, b)

    merged = (await gql.data(tenant.key, MERGE, {"survivor": a, "merged": [b]}))["mergeCustomers"]
    assert merged["userErrors"] == []
    assert merged["merges"][0]["rule"] == "manual" and merged["merges"][0]["actor"].startswith("api_key:")
    moved = {m["what"]: m["count"] for m in merged["merges"][0]["moved"]}
    assert moved == {"identities": 2, "tags": 1, "consents": 0, "orders": 1, "loyalty": 0}
    after = await snapshot(gql, tenant, a)
    assert {(k, v) for k, v, _ in after["identities"]} == {
        ("EMAIL", "li@example.cn"),
        ("SHOPEE_BUYER", "sp-1"),
        ("PHONE", "+8613800001111"),
        ("TIKTOK_BUYER", "tt-1"),
    }
    assert [t["name"] for t in after["tags"]] == ["shared", "tiktok-fan", "vip"]
    assert after["orders"]["totalCount"] == 3
    assert (await snapshot(gql, tenant, b))["mergedInto"] == {"id": a}
    listed = await gql.data(tenant.key, "{ customers { totalCount edges { node { id } } } }")
    assert listed["customers"]["totalCount"] == 1
    # New orders for the merged person's identities now reach the survivor.
    assert await order(gql, tenant, "B-2", {"phone": "+8613800001111"}, channel="tiktok") == a

    undone = (await gql.data(tenant.key, UNMERGE, {"id": b}))["unmergeCustomer"]
    assert undone["userErrors"] == [] and undone["customer"]["mergedInto"] is None
    restored_a, restored_b = await snapshot(gql, tenant, a), await snapshot(gql, tenant, b)
    assert restored_b == before_b
    # The survivor is as it was, plus the order that arrived for it while merged.
    assert {k: v for k, v in restored_a.items() if k != "orders"} == {
        k: v for k, v in before_a.items() if k != "orders"
    }
    assert [e["node"]["externalId"] for e in restored_a["orders"]["edges"]] == ["A-1", "A-2", "B-2"]
    history = await gql.data(
        tenant.key,
        "query($id: ID!) { customer(id: $id) { mergeHistory { rule undoneAt undoneBy } } }",
        {"id": b},
    )
    assert history["customer"]["mergeHistory"][0]["undoneAt"] is not None


async def test_different_unionids_are_never_merged(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await order(gql, tenant, "W-1", {"wechatUnionid": "union-1"}, channel="wechat")
    b = await order(gql, tenant, "W-2", {"wechatUnionid": "union-2"}, channel="wechat")
    result = (await gql.data(tenant.key, MERGE, {"survivor": a, "merged": [b]}))["mergeCustomers"]
    assert result["userErrors"][0]["code"] == "CONFLICTING_IDENTITIES"
    assert "wechat_unionid" in result["userErrors"][0]["message"]
    assert (await snapshot(gql, tenant, b))["mergedInto"] is None


async def test_bad_merges_are_refused_whole(gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant) -> None:
    a = await order(gql, tenant, "X-1", {"buyerId": "x1"})
    b = await order(gql, tenant, "X-2", {"buyerId": "x2"})
    c = await order(gql, tenant, "X-3", {"buyerId": "x3"})
    foreign = await order(gql, other_tenant, "F-1", {"buyerId": "f1"})

    async def codes(survivor: str, merged: list[str]) -> list[str]:
        result = (await gql.data(tenant.key, MERGE, {"survivor": survivor, "merged": merged}))[
            "mergeCustomers"
        ]
        return [e["code"] for e in result["userErrors"]]

    assert await codes(a, [a]) == ["SELF_MERGE"]
    assert await codes(a, [b, foreign]) == ["NOT_FOUND"]
    assert await codes(a, []) == ["INVALID_COUNT"]
    assert (await snapshot(gql, tenant, b))["mergedInto"] is None  # nothing of the refused call happened
    assert await codes(a, [b]) == []
    assert await codes(c, [b]) == ["ALREADY_MERGED"]
    assert await codes(b, [c]) == ["ALREADY_MERGED"]
    # Undo in reverse order only: merge a into c, then b (inside a) cannot come out first.
    assert await codes(c, [a]) == []
    refused = (await gql.data(tenant.key, UNMERGE, {"id": b}))["unmergeCustomer"]
    assert refused["userErrors"] == [{"field": "id", "code": "UNMERGE_ORDER"}]
    assert (await gql.data(tenant.key, UNMERGE, {"id": a}))["unmergeCustomer"]["userErrors"] == []
    assert (await gql.data(tenant.key, UNMERGE, {"id": b}))["unmergeCustomer"]["userErrors"] == []
    assert (await gql.data(tenant.key, UNMERGE, {"id": b}))["unmergeCustomer"]["userErrors"][0][
        "code"
    ] == "NOT_MERGED"
    listed = await gql.data(tenant.key, "{ customers { totalCount } }")
    assert listed["customers"]["totalCount"] == 3


async def test_automatic_merges_say_which_rule_joined_them_and_can_be_undone(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    by_union = await order(gql, tenant, "W-1", {"wechatUnionid": "union-9"}, channel="wechat")
    by_email = await order(gql, tenant, "A-1", {"email": "nine@example.cn"}, channel="amazon")
    linked = await order(
        gql, tenant, "T-1", {"wechatUnionid": "union-9", "email": "nine@example.cn"}, channel="tiktok"
    )
    assert linked == by_union
    history = await gql.data(
        tenant.key,
        "query($id: ID!) { customer(id: $id) { mergedInto { id } mergeHistory { rule actor } } }",
        {"id": by_email},
    )
    assert history["customer"]["mergedInto"] == {"id": by_union}
    assert history["customer"]["mergeHistory"] == [
        {"rule": "identity:email", "actor": "system:identity-resolution"}
    ]
    assert (await gql.data(tenant.key, UNMERGE, {"id": by_email}))["unmergeCustomer"]["userErrors"] == []
    restored = await snapshot(gql, tenant, by_email)
    assert [(k, v) for k, v, _ in restored["identities"]] == [("EMAIL", "nine@example.cn")]
    assert [e["node"]["externalId"] for e in restored["orders"]["edges"]] == ["A-1"]


async def test_a_merged_profile_changes_only_through_its_survivor(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await order(gql, tenant, "M-1", {"buyerId": "m1"})
    b = await order(gql, tenant, "M-2", {"buyerId": "m2"})
    await gql.data(tenant.key, MERGE, {"survivor": a, "merged": [b]})
    update = await gql.data(
        tenant.key,
        'mutation($id: ID!) { updateCustomer(input: {id: $id, displayName: "X"}) { userErrors { code } } }',
        {"id": b},
    )
    delete = await gql.data(
        tenant.key,
        "mutation($id: ID!) { deleteCustomer(input: {id: $id}) { userErrors { code } } }",
        {"id": b},
    )
    tags = await gql.data(
        tenant.key,
        'mutation($id: ID!) { addCustomerTags(input: {ids: [$id], tags: ["x"]}) { userErrors { code } } }',
        {"id": b},
    )
    assert [
        r[k]["userErrors"]
        for r, k in ((update, "updateCustomer"), (delete, "deleteCustomer"), (tags, "addCustomerTags"))
    ] == [[{"code": "NOT_FOUND"}]] * 3


async def test_crossed_concurrent_merges_leave_one_survivor(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await order(gql, tenant, "C-1", {"buyerId": "c1"})
    b = await order(gql, tenant, "C-2", {"buyerId": "c2"})
    results = await asyncio.gather(
        gql.data(tenant.key, MERGE, {"survivor": a, "merged": [b]}),
        gql.data(tenant.key, MERGE, {"survivor": b, "merged": [a]}),
    )
    outcomes = sorted(tuple(e["code"] for e in r["mergeCustomers"]["userErrors"]) for r in results)
    assert outcomes == [(), ("ALREADY_MERGED",)]
    listed = await gql.data(
        tenant.key, "{ customers { totalCount edges { node { orders { totalCount } } } } }"
    )
    assert listed["customers"]["totalCount"] == 1
    assert listed["customers"]["edges"][0]["node"]["orders"]["totalCount"] == 2
