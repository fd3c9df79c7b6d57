"""Helpers for the NPS tests (and others that survey customers)."""

from __future__ import annotations

from typing import Any

from support import GraphQLClient, Tenant

CREATE = """mutation($input: SurveyInput!) { createSurvey(input: $input) {
  survey { id status channels } userErrors { field code message } } }"""
QUESTION = {
    "zh-CN": "您向朋友推荐我们的可能性有多大？",  # noqa: RUF001 (Chinese punctuation)
    "en": "How likely are you to recommend us to a friend?",
}


async def survey(gql: GraphQLClient, tenant: Tenant, **given: Any) -> str:
    data = await gql.data(
        tenant.key,
        CREATE,
        {
            "input": {
                "name": "After purchase",
                "question": QUESTION,
                "commentPrompt": {"zh-CN": "为什么", "en": "Why?"},
                "channels": ["wechat", "email"],
                "status": "ACTIVE",
                **given,
            }
        },
    )
    payload = data["createSurvey"]
    assert payload["userErrors"] == [], payload
    return str(payload["survey"]["id"])


CONSENT = """mutation($input: RecordConsentInput!) { recordConsent(input: $input) { userErrors { code } } }"""


async def customer(gql: GraphQLClient, tenant: Tenant, name: str, consent: bool = True) -> str:
    data = await gql.data(
        tenant.key,
        "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } } }",
        {"n": name},
    )
    customer_id = str(data["createCustomer"]["customer"]["id"])
    if consent:
        await grant(gql, tenant, customer_id, True)
    return customer_id


async def grant(
    gql: GraphQLClient, tenant: Tenant, customer_id: str, granted: bool, channel: str = "wechat"
) -> None:
    data = await gql.data(
        tenant.key,
        CONSENT,
        {
            "input": {
                "customerId": customer_id,
                "channel": channel,
                "purpose": "SURVEYS",
                "granted": granted,
                "source": "test",
            }
        },
    )
    assert data["recordConsent"]["userErrors"] == []
