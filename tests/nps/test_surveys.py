"""NPS surveys through the API and the public link: quiet period, consent, single-use signed
links, detractor follow-up, loyalty points."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from loyalty_support import backdate_rules, balance, program, rules
from nps_support import CREATE, QUESTION, customer, grant, survey
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.nps import delivery, links, service
from brandloop.settings import Settings
from support import GraphQLClient, Tenant

INVITE = """mutation($input: InviteToSurveyInput!) { inviteToSurvey(input: $input) {
  invitations { id link status customer { id } } skippedQuietPeriod skippedNoConsent skippedUnknown
  userErrors { field code message } } }"""
TASKS = """query($f: NpsTaskFilterInput) { npsTasks(filter: $f) { totalCount edges { node {
  id status overdue owner notes { text by } response { score category customer { id } } } } } }"""


async def invite(
    gql: GraphQLClient,
    tenant: Tenant,
    survey_id: str,
    customers: list[str],
    key: str = "round-1",
    channel: str = "wechat",
) -> dict[str, Any]:
    data = await gql.data(
        tenant.key,
        INVITE,
        {"input": {"surveyId": survey_id, "customerIds": customers, "channel": channel, "campaignKey": key}},
    )
    return dict(data["inviteToSurvey"])


def path(link: str) -> str:
    return "/surveys/" + link.rsplit("/", 1)[1]


async def test_surveys_are_validated(gql: GraphQLClient, tenant: Tenant) -> None:
    data = await gql.data(
        tenant.key,
        CREATE,
        {
            "input": {
                "name": "",
                "question": {"en": "Only English"},
                "channels": [],
                "followUps": [
                    {"key": "why", "kind": "single_choice", "prompt": QUESTION, "options": ["one"]}
                ],
                "trigger": "AFTER_ORDER",
            }
        },
    )
    codes = {(e["field"], e["code"]) for e in data["createSurvey"]["userErrors"]}
    assert codes == {
        ("name", "INVALID_NAME"),
        ("question", "LANGUAGE_MISSING"),
        ("channels", "REQUIRED"),
        ("followUps.0.options", "INVALID_OPTIONS"),
        ("triggerStatus", "INVALID_STATUS"),
        ("triggerDelayDays", "INVALID_DELAY"),
    }


async def test_the_quiet_period_holds_across_surveys_and_consent_is_required(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    first, second = await survey(gql, tenant), await survey(gql, tenant, name="Brand survey")
    mei, li, lin = (
        await customer(gql, tenant, "Mei"),
        await customer(gql, tenant, "Li", consent=False),
        await customer(gql, tenant, "Lin"),
    )
    await grant(gql, tenant, lin, False)  # granted, then withdrawn: the latest record counts
    invited = await invite(gql, tenant, first, [mei, li, lin, mei])
    assert [i["customer"]["id"] for i in invited["invitations"]] == [mei]
    assert (invited["skippedQuietPeriod"], invited["skippedNoConsent"], invited["skippedUnknown"]) == (
        0,
        2,
        0,
    )
    again = await invite(gql, tenant, first, [mei])  # the same round: the same invitation, nothing new
    assert again["invitations"] == invited["invitations"]
    other = await invite(gql, tenant, second, [mei], key="round-9")
    assert other["invitations"] == [] and other["skippedQuietPeriod"] == 1
    await gql.data(
        tenant.key, "mutation { updateTenantSettings(input: {surveyQuietDays: 0}) { userErrors { code } } }"
    )
    # The skipped round stays skipped (it was that event's answer); a new round goes through.
    assert (await invite(gql, tenant, second, [mei], key="round-9"))["skippedQuietPeriod"] == 1
    assert len((await invite(gql, tenant, second, [mei], key="round-10"))["invitations"]) == 1
    wrong = await invite(gql, tenant, first, [mei], channel="sms")
    assert [e["code"] for e in wrong["userErrors"]] == ["CHANNEL_NOT_ALLOWED"]
    unknown = await invite(
        gql, tenant, first, ["Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"]
    )
    assert unknown["skippedUnknown"] == 1


async def test_a_link_is_single_use_and_opens_one_task_for_a_detractor(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    survey_id = await survey(gql, tenant)
    mei = await customer(gql, tenant, "Mei")
    link = (await invite(gql, tenant, survey_id, [mei]))["invitations"][0]["link"]
    form = await client.get(path(link), headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert form.status_code == 200
    assert form.json()["question"] == QUESTION["zh-CN"] and form.json()["brand"].startswith("Brand ")
    assert (await client.get(path(link) + "?lang=en")).json()["question"] == QUESTION["en"]
    # Two submissions at the same instant: one is taken, the other told it was answered.
    first, second = await asyncio.gather(
        client.post(path(link), json={"score": 3, "comment": "<b>late</b> delivery"}),
        client.post(path(link), json={"score": 2, "comment": "never again"}),
    )
    # Both are detractors: whichever is taken, exactly one task opens.
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    tasks = (await gql.data(tenant.key, TASKS))["npsTasks"]
    assert tasks["totalCount"] == 1
    task = tasks["edges"][0]["node"]
    assert task["response"]["customer"]["id"] == mei and task["status"] == "OPEN" and task["overdue"] is False
    response = (
        await gql.data(
            tenant.key,
            "query($id: ID!) { survey(id: $id) { responses { totalCount edges { node { score comment category } } } } }",
            {"id": survey_id},
        )
    )["survey"]["responses"]
    assert response["totalCount"] == 1
    assert response["edges"][0]["node"] in (
        {"score": 3, "comment": "<b>late</b> delivery", "category": "DETRACTOR"},  # stored as given
        {"score": 2, "comment": "never again", "category": "DETRACTOR"},
    )
    updated = await gql.data(
        tenant.key,
        """mutation($input: UpdateNpsTaskInput!) { updateNpsTask(input: $input) {
             task { owner status notes { text } } userErrors { code } } }""",
        {
            "input": {
                "id": task["id"],
                "owner": "Zhang (service)",
                "status": "CONTACTED",
                "note": "Called, sent a voucher",
            }
        },
    )
    assert updated["updateNpsTask"]["task"] == {
        "owner": "Zhang (service)",
        "status": "CONTACTED",
        "notes": [{"text": "Called, sent a voucher"}],
    }


async def test_promoters_open_no_task_and_passives_only_when_asked(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    survey_id = await survey(gql, tenant)
    asked = await survey(gql, tenant, name="Passives too", followUpPassives=True)
    people = [await customer(gql, tenant, name) for name in ("Mei", "Li", "Lin")]
    for survey_pk, person, score in (
        (survey_id, people[0], 9),
        (survey_id, people[1], 8),
        (asked, people[2], 8),
    ):
        link = (await invite(gql, tenant, survey_pk, [person]))["invitations"][0]["link"]
        assert (await client.post(path(link), json={"score": score})).status_code == 201
    tasks = (await gql.data(tenant.key, TASKS))["npsTasks"]
    assert [e["node"]["response"]["customer"]["id"] for e in tasks["edges"]] == [people[2]]


async def test_bad_answers_forged_and_expired_links_are_refused(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    survey_id = await survey(
        gql,
        tenant,
        followUps=[
            {"key": "reason", "kind": "single_choice", "prompt": QUESTION, "options": ["price", "taste"]}
        ],
    )
    link = (await invite(gql, tenant, survey_id, [await customer(gql, tenant, "Mei")]))["invitations"][0][
        "link"
    ]
    for body in (
        {"score": 11},
        {"score": "7"},
        {"score": True},
        {"score": 7.5},
        {},
        {"score": 7, "comment": "x" * 2001},
        {"score": 7, "answers": [{"key": "reason", "value": "colour"}]},
        {"score": 7, "answers": [{"key": "nope", "value": "price"}]},
        {"score": 7, "extra": 1},
    ):
        refused = await client.post(path(link), json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["code"] == "INVALID"
    too_large = await client.post(
        path(link), content=b"{" + b" " * 16_001 + b"}", headers={"content-type": "application/json"}
    )
    assert too_large.status_code == 413
    token = path(link).rsplit("/", 1)[1]
    for position in (5, len(token) // 2, len(token) - 3):  # one byte changed anywhere
        forged = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        assert (await client.get(f"/surveys/{forged}")).status_code == 401
    claims = links.read(links.signing_key(settings), token)
    stale = links.issue(
        links.signing_key(settings),
        claims.tenant_id,
        claims.invitation_id,
        datetime.now(UTC) - timedelta(seconds=1),
    )
    assert (await client.post(f"/surveys/{stale}", json={"score": 8})).status_code == 410
    other_key = links.issue(
        links.signing_key(settings.model_copy(update={"secret_key": SecretStr("x" * 40)})),
        claims.tenant_id,
        claims.invitation_id,
        claims.expires_at,
    )
    assert (await client.get(f"/surveys/{other_key}")).status_code == 401
    answered = await client.post(
        path(link), json={"score": 7, "answers": [{"key": "reason", "value": "taste"}]}
    )
    assert answered.status_code == 201


async def test_another_tenants_invitation_cannot_be_reached_with_a_forged_tenant(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    survey_id = await survey(gql, tenant)
    link = (await invite(gql, tenant, survey_id, [await customer(gql, tenant, "Mei")]))["invitations"][0][
        "link"
    ]
    claims = links.read(links.signing_key(settings), path(link).rsplit("/", 1)[1])
    # Even a validly signed token naming another tenant finds nothing there: RLS scopes the lookup.
    crossed = links.issue(
        links.signing_key(settings), other_tenant.id, claims.invitation_id, claims.expires_at
    )
    assert (await client.get(f"/surveys/{crossed}")).status_code == 404
    assert (
        await client.get(
            f"/surveys/{links.issue(links.signing_key(settings), uuid.uuid4(), claims.invitation_id, claims.expires_at)}"
        )
    ).status_code == 404


async def test_a_response_earns_nps_points_when_a_rule_says_so(
    engine: AsyncEngine, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1", events=[{"kind": "NPS_RESPONSE", "points": 15}])
    await backdate_rules(engine, tenant, days=1)
    survey_id = await survey(gql, tenant)
    mei = await customer(gql, tenant, "Mei")
    link = (await invite(gql, tenant, survey_id, [mei]))["invitations"][0]["link"]
    assert (await client.post(path(link), json={"score": 8})).status_code == 201
    assert (await balance(gql, tenant, mei))["total"] == 15


async def test_overdue_tasks_are_visible(
    engine: AsyncEngine, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    survey_id = await survey(gql, tenant)
    links_ = [
        i["link"]
        for i in (await invite(gql, tenant, survey_id, [await customer(gql, tenant, n) for n in "ABC"]))[
            "invitations"
        ]
    ]
    for link in links_:
        assert (await client.post(path(link), json={"score": 2})).status_code == 201
    async with platform_transaction(engine) as session:  # two days pass for one of them
        await session.execute(
            text(
                "UPDATE nps_tasks SET due_at = now() - interval '1 hour' WHERE id = (SELECT id FROM nps_tasks WHERE tenant_id = :t ORDER BY id LIMIT 1)"
            ),
            {"t": tenant.id},
        )
    overdue = (await gql.data(tenant.key, TASKS, {"f": {"overdue": True}}))["npsTasks"]
    assert overdue["totalCount"] == 1 and overdue["edges"][0]["node"]["overdue"] is True
    assert (await gql.data(tenant.key, TASKS, {"f": {"overdue": False, "status": "OPEN"}}))["npsTasks"][
        "totalCount"
    ] == 2


async def test_orders_invite_after_their_delay_once(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant, settings: Settings
) -> None:
    def make_link(invitation: Any) -> str:
        return links.link(settings, invitation)

    survey_id = await survey(
        gql, tenant, trigger="AFTER_ORDER", triggerStatus="completed", triggerDelayDays=7
    )
    record = (
        """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { order { customer { id } } } }"""
    )
    buyers = []
    for n, channel in enumerate(["wechat", "shopee", "wechat"]):
        data = await gql.data(
            tenant.key,
            record,
            {
                "input": {
                    "channel": channel,
                    "externalId": f"O-{n}",
                    "status": "COMPLETED" if n < 2 else "PAID",
                    "currency": "CNY",
                    "total": 100,
                    "placedAt": "2026-11-20T00:00:00Z",
                    "lines": [],
                    "buyer": {"buyerId": f"b-{n}", "name": f"Buyer {n}"},
                }
            },
        )
        buyers.append(data["recordOrder"]["order"]["customer"]["id"])
    await grant(gql, tenant, buyers[0], True)  # consent on wechat: the first order's channel
    async with tenant_transaction(engine, tenant.id) as session:
        assert await service.invite_after_orders(session, make_link) == 0  # not a week yet
    later = datetime.now(UTC) + timedelta(days=8)
    async with tenant_transaction(engine, tenant.id) as session:
        assert await service.invite_after_orders(session, make_link, now=later) == 2  # sent one, skipped one
    async with tenant_transaction(engine, tenant.id) as session:
        assert await service.invite_after_orders(session, make_link, now=later) == 0
    rates = await gql.data(
        tenant.key,
        """query($id: ID!) { survey(id: $id) { responseRates {
             channel invited delivered responded skippedQuietPeriod skippedNoConsent responseRate }
           invitations { edges { node { status skipReason link customer { id } } } } } }""",
        {"id": survey_id},
    )
    # The shopee order is not a channel of the survey: its invitation goes through the survey's
    # first channel (email), where that buyer has no consent.
    assert rates["survey"]["responseRates"] == [
        {"channel": "email", "invited": 0, "delivered": 0, "responded": 0, "skippedQuietPeriod": 0,
         "skippedNoConsent": 1, "responseRate": None},
        {"channel": "wechat", "invited": 1, "delivered": 1, "responded": 0, "skippedQuietPeriod": 0,
         "skippedNoConsent": 0, "responseRate": 0.0},
    ]  # fmt: skip
    invitations = [e["node"] for e in rates["survey"]["invitations"]["edges"]]
    assert sorted((i["status"], i["skipReason"], i["link"] is None) for i in invitations) == [
        ("CREATED", None, False),
        ("SKIPPED", "no_consent", True),
    ]


class Outbox:
    """A channel's delivery, as a connector would register it: it takes some and refuses others."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def deliver(self, session: Any, invitation: Any, link: str) -> bool:
        self.sent.append(link)
        return len(self.sent) == 1


async def test_a_channels_delivery_sends_the_links(gql: GraphQLClient, tenant: Tenant) -> None:
    survey_id = await survey(gql, tenant)
    people = [await customer(gql, tenant, name) for name in ("Mei", "Li")]
    for person in people:
        await grant(gql, tenant, person, True, channel="email")
    outbox = Outbox()
    delivery.register("email", outbox)
    try:
        invited = await invite(gql, tenant, survey_id, people, channel="email")
    finally:
        delivery.unregister("email")
    assert sorted(outbox.sent) == sorted(i["link"] for i in invited["invitations"])
    rates = await gql.data(
        tenant.key,
        "query($id: ID!) { survey(id: $id) { responseRates { channel invited delivered } } }",
        {"id": survey_id},
    )
    assert rates["survey"]["responseRates"] == [{"channel": "email", "invited": 2, "delivered": 1}]


async def test_a_filter_chooses_whom_to_invite(gql: GraphQLClient, tenant: Tenant) -> None:
    survey_id = await survey(gql, tenant)
    vip = await customer(gql, tenant, "VIP")
    await customer(gql, tenant, "Other")  # consented, but not tagged
    await gql.data(
        tenant.key,
        'mutation($ids: [ID!]!) { addCustomerTags(input: {ids: $ids, tags: ["vip"]}) { userErrors { code } } }',
        {"ids": [vip]},
    )
    data = await gql.data(
        tenant.key,
        INVITE,
        {
            "input": {
                "surveyId": survey_id,
                "filter": {"tags": ["vip"]},
                "channel": "wechat",
                "campaignKey": "vip-1",
            }
        },
    )
    assert [i["customer"]["id"] for i in data["inviteToSurvey"]["invitations"]] == [vip]
