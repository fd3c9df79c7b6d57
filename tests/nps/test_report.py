"""npsReport on a fixed dataset, against a computation by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nps_support import survey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction
from brandloop.graphql.relay import pk_of
from support import GraphQLClient, Tenant

REPORT = """query($f: NpsReportFilterInput!, $g: NpsGroupBy!) { npsReport(filter: $f, groupBy: $g) {
  minResponses groups { key responses promoters passives detractors nps marginOfError band tooFewResponses
                        previousResponses previousNps change significant } } }"""

SEPTEMBER = datetime(2026, 9, 10, 12, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 10, 12, tzinfo=UTC)
# (when, channel, score, how many)
DATASET = [
    (SEPTEMBER, "wechat", 10, 10), (SEPTEMBER, "wechat", 8, 10), (SEPTEMBER, "wechat", 3, 20),
    (OCTOBER, "wechat", 9, 26), (OCTOBER, "wechat", 7, 2), (OCTOBER, "wechat", 0, 2),
    (OCTOBER, "email", 10, 4), (OCTOBER, "email", 7, 4), (OCTOBER, "email", 6, 2),
]  # fmt: skip


async def load(engine: AsyncEngine, tenant: Tenant, survey_pk: str) -> None:
    """Responses as the owner, at fixed times: the API stamps responses with the present."""
    rows = [(when, channel, score) for when, channel, score, count in DATASET for _ in range(count)]
    async with platform_transaction(engine) as session:
        await session.execute(
            text(
                """
                WITH given AS (
                  SELECT gen_random_uuid() AS customer, gen_random_uuid() AS invitation, *
                    FROM unnest(CAST(:whens AS timestamptz[]), CAST(:channels AS text[]), CAST(:scores AS int[]))
                         AS g(at, channel, score)),
                people AS (
                  INSERT INTO customers (tenant_id, id, display_name)
                  SELECT :t, customer, 'Respondent' FROM given),
                invited AS (
                  INSERT INTO nps_invitations (tenant_id, id, survey_id, customer_id, channel, trigger_key, status,
                                               expires_at, created_at, responded_at)
                  SELECT :t, invitation, :s, customer, channel, 'fixed:' || invitation, 'responded', at + interval '14 days', at, at
                    FROM given)
                INSERT INTO nps_responses (tenant_id, id, invitation_id, survey_id, customer_id, channel, score, created_at)
                SELECT :t, gen_random_uuid(), invitation, :s, customer, channel, score, at FROM given
                """
            ),
            {
                "t": tenant.id,
                "s": survey_pk,
                "whens": [r[0] for r in rows],
                "channels": [r[1] for r in rows],
                "scores": [r[2] for r in rows],
            },
        )


async def report(
    gql: GraphQLClient, tenant: Tenant, group: str, since: str, until: str, **flt: Any
) -> dict[str, Any]:
    data = await gql.data(tenant.key, REPORT, {"g": group, "f": {"from": since, "to": until, **flt}})
    return dict(data["npsReport"])


async def test_nps_and_its_margin_of_error_match_a_hand_computation(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    survey_id = await survey(gql, tenant)
    await load(engine, tenant, str(pk_of(survey_id, "Survey")))
    by_month = await report(
        gql, tenant, "MONTH", since="2026-09-01T00:00:00Z", until="2026-11-01T00:00:00Z", surveyId=survey_id
    )
    assert by_month["minResponses"] == 30
    september, october = by_month["groups"]
    # September: 40 answers, 10 promoters (25%), 20 detractors (50%): NPS = 25 - 50 = -25;
    # MoE = 1.96 x sqrt((0.25 + 0.5 - (0.25 - 0.5)^2) / 40) x 100 = 1.96 x sqrt(0.6875 / 40) x 100 = 25.70.
    assert september == {
        "key": "2026-09", "responses": 40, "promoters": 10, "passives": 10, "detractors": 20,
        "nps": -25.0, "marginOfError": 25.7, "band": "needs_improvement", "tooFewResponses": False,
        "previousResponses": None, "previousNps": None, "change": None, "significant": None,
    }  # fmt: skip
    # October: 40 answers, 30 promoters (75%), 4 detractors (10%): NPS 65;
    # MoE = 1.96 x sqrt((0.85 - 0.65^2) / 40) x 100 = 20.26. The change, +90 points, exceeds
    # sqrt(25.70^2 + 20.26^2) = 32.72: significant.
    assert october == {
        "key": "2026-10", "responses": 40, "promoters": 30, "passives": 6, "detractors": 4,
        "nps": 65.0, "marginOfError": 20.26, "band": "excellent", "tooFewResponses": False,
        "previousResponses": 40, "previousNps": -25.0, "change": 90.0, "significant": True,
    }  # fmt: skip
    by_channel = await report(
        gql, tenant, "CHANNEL", since="2026-10-01T00:00:00Z", until="2026-11-01T00:00:00Z"
    )
    email, wechat = by_channel["groups"]
    # Email in October: 10 answers, 4 promoters, 2 detractors: NPS 20, MoE 46.38; too few to read;
    # no email answers the month before, so no change.
    assert (
        email["key"],
        email["nps"],
        email["marginOfError"],
        email["tooFewResponses"],
        email["change"],
    ) == ("email", 20.0, 46.38, True, None)
    # WeChat: 26 of 30 promoters, 2 detractors: 80; against September's -25 (the same span before).
    assert (wechat["nps"], wechat["previousNps"], wechat["change"], wechat["significant"]) == (
        80.0,
        -25.0,
        105.0,
        True,
    )
    by_day = await report(
        gql, tenant, "DAY", since="2026-10-10T00:00:00Z", until="2026-10-11T00:00:00Z", channel="email"
    )
    assert [(g["key"], g["responses"], g["previousResponses"]) for g in by_day["groups"]] == [
        ("2026-10-10", 10, None)
    ]
    empty = await report(gql, tenant, "SEGMENT", since="2025-01-01T00:00:00Z", until="2025-02-01T00:00:00Z")
    assert empty["groups"] == []
    refused = await gql(
        tenant.key,
        REPORT,
        {"g": "DAY", "f": {"from": "2026-10-01T00:00:00Z", "to": "2026-09-01T00:00:00Z"}},
    )
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
