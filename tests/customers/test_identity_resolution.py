"""One profile per real person: deterministic matching, and the guards against wrong merges."""

from __future__ import annotations

from typing import Any

from support import GraphQLClient, Tenant, buy

PROFILES = """
{ customers(first: 100) { totalCount edges { node {
    id displayName email phone
    identities { kind value source }
    orders { totalCount edges { node { channel externalId } } } } } } }
"""


async def deliver(
    gql: GraphQLClient, tenant: Tenant, channel: str, external_id: str, buyer: dict[str, Any]
) -> str | None:
    return await buy(gql, tenant, external_id, buyer, channel=channel)


async def profiles(gql: GraphQLClient, tenant: Tenant) -> list[dict[str, Any]]:
    return [e["node"] for e in (await gql.data(tenant.key, PROFILES))["customers"]["edges"]]


def identities(profile: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["kind"], i["value"]) for i in profile["identities"]}


async def test_one_person_from_three_channels_is_one_profile(gql: GraphQLClient, tenant: Tenant) -> None:
    shopee = await deliver(
        gql, tenant, "shopee", "SP-1", {"name": "Li Wei", "buyerId": "sp-991", "phone": "+8613900001111"}
    )
    wechat = await deliver(
        gql,
        tenant,
        "wechat",
        "WX-1",
        {
            "wechatUnionid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
            "phone": "+86 139 0000 1111",
            "email": "LiWei@QQ.com",
        },
    )
    amazon = await deliver(
        gql, tenant, "amazon", "AMZ-1", {"email": "liwei@qq.com", "buyerId": "amzn1.buyer.X7"}
    )
    assert shopee == wechat == amazon

    (profile,) = await profiles(gql, tenant)
    assert profile["displayName"] == "Li Wei"
    assert identities(profile) == {
        ("SHOPEE_BUYER", "sp-991"),
        ("PHONE", "+8613900001111"),
        ("WECHAT_UNIONID", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
        ("EMAIL", "liwei@qq.com"),
        ("AMAZON_BUYER", "amzn1.buyer.X7"),
    }
    assert {i["source"] for i in profile["identities"]} == {"shopee", "wechat", "amazon"}
    orders = [(o["node"]["channel"], o["node"]["externalId"]) for o in profile["orders"]["edges"]]
    assert orders == [("shopee", "SP-1"), ("wechat", "WX-1"), ("amazon", "AMZ-1")]


async def test_conflicting_unionids_stay_apart(gql: GraphQLClient, tenant: Tenant) -> None:
    first = await deliver(
        gql, tenant, "wechat", "WX-1", {"wechatUnionid": "union-A", "phone": "+8613700002222"}
    )
    second = await deliver(
        gql, tenant, "wechat", "WX-2", {"wechatUnionid": "union-B", "phone": "+8613700002222"}
    )
    assert first != second
    by_id = {p["id"]: p for p in await profiles(gql, tenant)}
    assert identities(by_id[first]) == {("WECHAT_UNIONID", "union-A"), ("PHONE", "+8613700002222")}
    assert identities(by_id[second]) == {("WECHAT_UNIONID", "union-B")}  # the shared phone stays put
    # A later order with only the phone goes to the profile that holds it.
    assert await deliver(gql, tenant, "shopee", "SP-9", {"phone": "+8613700002222"}) == first


async def test_priority_decides_when_identities_point_to_two_profiles(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    by_union = await deliver(gql, tenant, "wechat", "WX-1", {"wechatUnionid": "union-P"})
    by_email = await deliver(gql, tenant, "amazon", "AMZ-1", {"email": "p@example.cn"})
    assert by_union != by_email
    both = await deliver(gql, tenant, "tiktok", "TT-1", {"wechatUnionid": "union-P", "email": "p@example.cn"})
    assert both == by_union
    # The record showed they are one person: the email's profile was merged in, by rule.
    (profile,) = await profiles(gql, tenant)
    assert identities(profile) == {("WECHAT_UNIONID", "union-P"), ("EMAIL", "p@example.cn")}
    assert profile["orders"]["totalCount"] == 3


async def test_placeholder_values_never_join_people(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await deliver(
        gql, tenant, "shopee", "A", {"buyerId": "a1", "email": "noreply@shop.com", "phone": "+8613888888888"}
    )
    b = await deliver(
        gql, tenant, "shopee", "B", {"buyerId": "b1", "email": "noreply@shop.com", "phone": "+8613888888888"}
    )
    c = await deliver(gql, tenant, "shopee", "C", {"buyerId": "c1", "email": "j***@gmail.com"})
    assert len({a, b, c}) == 3
    for profile in await profiles(gql, tenant):
        assert {kind for kind, _ in identities(profile)} == {"SHOPEE_BUYER"}


async def test_the_tenants_blocklist_is_honoured(gql: GraphQLClient, tenant: Tenant) -> None:
    blocked = await gql.data(
        tenant.key,
        'mutation { blockIdentityValue(input: {kind: PHONE, value: "+86 21 6288 1234"}) { kind value userErrors { code } } }',
    )
    assert blocked["blockIdentityValue"] == {"kind": "PHONE", "value": "+862162881234", "userErrors": []}
    a = await deliver(gql, tenant, "offline", "POS-1", {"buyerId": "card-1", "phone": "+862162881234"})
    b = await deliver(gql, tenant, "offline", "POS-2", {"buyerId": "card-2", "phone": "+862162881234"})
    assert a != b
    listed = await gql.data(tenant.key, "{ blockedIdentityValues { kind value } }")
    assert listed["blockedIdentityValues"] == [{"kind": "PHONE", "value": "+862162881234"}]
    unblocked = await gql.data(
        tenant.key,
        'mutation { unblockIdentityValue(input: {kind: PHONE, value: "+862162881234"}) { userErrors { code } } }',
    )
    assert unblocked["unblockIdentityValue"]["userErrors"] == []
    again = await gql.data(
        tenant.key,
        'mutation { unblockIdentityValue(input: {kind: PHONE, value: "+862162881234"}) { userErrors { code } } }',
    )
    assert again["unblockIdentityValue"]["userErrors"] == [{"code": "NOT_FOUND"}]


async def test_a_profile_holds_a_bounded_number_of_values_per_kind(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    ids = {
        await deliver(gql, tenant, "shopee", f"S{n}", {"buyerId": "same", "email": f"e{n}@mail.cn"})
        for n in range(7)
    }
    assert len(ids) == 1
    (profile,) = await profiles(gql, tenant)
    assert sum(1 for kind, _ in identities(profile) if kind == "EMAIL") == 5
    assert profile["orders"]["totalCount"] == 7


async def test_orders_join_customers_created_by_hand(gql: GraphQLClient, tenant: Tenant) -> None:
    created = await gql.data(
        tenant.key,
        'mutation { createCustomer(input: {displayName: "Store Member", email: "member@brand.cn"}) { customer { id } } }',
    )
    customer_id = created["createCustomer"]["customer"]["id"]
    assert await deliver(gql, tenant, "shopee", "S1", {"email": "MEMBER@brand.cn"}) == customer_id


async def test_manual_contact_changes_keep_identities_in_step(gql: GraphQLClient, tenant: Tenant) -> None:
    created = await gql.data(
        tenant.key,
        'mutation { createCustomer(input: {displayName: "A", email: "old@brand.cn", phone: "+8613512345678"}) { customer { id } } }',
    )
    customer_id = created["createCustomer"]["customer"]["id"]
    await gql.data(
        tenant.key,
        'mutation($id: ID!) { updateCustomer(input: {id: $id, email: "new@brand.cn", phone: null}) { userErrors { code } } }',
        {"id": customer_id},
    )
    (profile,) = await profiles(gql, tenant)
    assert identities(profile) == {("EMAIL", "new@brand.cn")}
    duplicate = await gql.data(
        tenant.key,
        'mutation { createCustomer(input: {displayName: "B", phone: "+8613512345678"}) { customer { id } } }',
    )
    assert duplicate["createCustomer"]["customer"] is not None  # the phone was released
    taken = await gql.data(
        tenant.key,
        'mutation { createCustomer(input: {displayName: "C", phone: "+8613512345678"}) { userErrors { field code } } }',
    )
    assert taken["createCustomer"]["userErrors"] == [{"field": "phone", "code": "DUPLICATE_PHONE"}]
