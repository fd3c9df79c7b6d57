"""The KPI definitions shipped with Brandloop (formulas in docs/kpis.md). A definition's version
changes whenever its formula does; dashboards show which version they computed."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from brandloop.kpis.measures import Dimension, Measures


class Unit(enum.StrEnum):
    MONEY = "money"
    """Major units of the tenant's reporting currency."""
    PERCENT = "percent"
    """A share, 0 to 1."""
    COUNT = "count"
    RATIO = "ratio"
    SCORE = "score"


class Direction(enum.StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


GRAINS = ("day", "week", "month", "quarter")


def _ratio(top: Decimal | int | None, bottom: Decimal | int | None) -> Decimal | None:
    if top is None or not bottom:
        return None
    return Decimal(top) / Decimal(bottom)


def _score(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


ORDERS = (Dimension.CHANNEL, Dimension.REGION, Dimension.SEGMENT)
"""The dimensions of what is read from orders."""
CHANNEL = (Dimension.CHANNEL,)
WHOLE = ()
"""No series: the KPI compares the whole period with the one before."""


def _clv(m: Measures) -> Decimal | None:
    """GMV per active customer x gross margin x expected lifetime (1 / churn), in periods."""
    if (
        m.gross_margin is None
        or not m.active_customers
        or not m.previous_active
        or m.retained == m.previous_active
    ):
        return None
    churn = 1 - Decimal(m.retained) / m.previous_active
    return m.gmv / m.active_customers * Decimal(m.gross_margin) / churn


@dataclass(frozen=True, slots=True)
class Kpi:
    key: str
    name: str
    unit: Unit
    direction: Direction
    version: int
    formula: str
    compute: Callable[[Measures], Decimal | None]
    dimensions: tuple[Dimension, ...] = CHANNEL
    grains: tuple[str, ...] = GRAINS
    benchmark: str | None = None


KPIS: dict[str, Kpi] = {
    k.key: k
    for k in [
        Kpi("gmv", "GMV", Unit.MONEY, Direction.HIGHER_IS_BETTER, 1,
            "sum of paid orders' totals less refunds, in the reporting currency", lambda m: m.gmv, ORDERS),
        Kpi("orders", "Orders", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "paid orders",
            lambda m: Decimal(m.orders), ORDERS),
        Kpi("aov", "Average order value", Unit.MONEY, Direction.HIGHER_IS_BETTER, 1, "GMV / orders",
            lambda m: _ratio(m.gmv, m.orders), ORDERS),
        Kpi("new_customers", "New customers", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1,
            "customers whose first paid order ever falls in the period", lambda m: Decimal(m.new_customers), ORDERS),
        Kpi("active_customers", "Active customers", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1,
            "customers with a paid order in the period", lambda m: Decimal(m.active_customers), ORDERS),
        Kpi("repeat_purchase_rate", "Repeat-purchase rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "active customers with two or more paid orders in the period / active customers",
            lambda m: _ratio(m.repeat_customers, m.active_customers), ORDERS),
        Kpi("retention_rate", "Retention rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "customers active in the period of the same length just before who are active again in this one / "
            "those customers", lambda m: _ratio(m.retained, m.previous_active), ORDERS, WHOLE),
        Kpi("churn_rate", "Churn rate", Unit.PERCENT, Direction.LOWER_IS_BETTER, 1, "1 - retention rate",
            lambda m: 1 - m.retained / Decimal(m.previous_active) if m.previous_active else None, ORDERS, WHOLE),
        Kpi("cohort_retention_rate", "Cohort retention", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "customers acquired (first paid order ever) in the period of the same length just before who bought "
            "again in this one / those customers", lambda m: _ratio(m.cohort_retained, m.cohort), ORDERS, WHOLE),
        Kpi("clv", "Customer lifetime value", Unit.MONEY, Direction.HIGHER_IS_BETTER, 1,
            "AOV x purchase frequency (orders per active customer) x gross margin x expected lifetime "
            "(1 / churn rate, in periods of this length) = GMV / active customers x gross margin / churn rate; "
            "needs the tenant's gross margin", _clv, ORDERS, WHOLE),
        Kpi("clv_cac", "CLV:CAC", Unit.RATIO, Direction.HIGHER_IS_BETTER, 1, "CLV / CAC",
            lambda m: _ratio(_clv(m), _ratio(m.spend, m.new_customers)), CHANNEL, WHOLE,
            benchmark="3 or more is healthy; below 1 loses money on each customer"),
        Kpi("private_domain_gmv_share", "Private-domain GMV share", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "GMV on the brand's own channels (wechat, mini_program, own_store) / GMV",
            lambda m: _ratio(m.private_gmv, m.gmv), (Dimension.REGION, Dimension.SEGMENT)),
        Kpi("channel_gmv_share", "Channel GMV share", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "a channel's GMV / all channels' GMV (broken down by channel)", lambda m: _ratio(m.gmv, m.all_gmv)),
        Kpi("marketing_spend", "Marketing spend", Unit.MONEY, Direction.LOWER_IS_BETTER, 1,
            "recorded spend, spread evenly over its days", lambda m: m.spend),
        Kpi("cac", "CAC", Unit.MONEY, Direction.LOWER_IS_BETTER, 1, "marketing spend / new customers",
            lambda m: _ratio(m.spend, m.new_customers)),
        Kpi("roi", "ROI", Unit.RATIO, Direction.HIGHER_IS_BETTER, 1, "(GMV - marketing spend) / marketing spend",
            lambda m: _ratio(m.gmv - m.spend, m.spend) if m.spend else None),
        Kpi("member_repurchase_rate", "Member repurchase rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "customers who were loyalty members when they bought in the period with two or more paid orders in it "
            "/ those members", lambda m: _ratio(m.repeat_members, m.buying_members), ORDERS),
        Kpi("tier_penetration", "Tier penetration", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "members holding a tier above the entry one at the period's end / members (by tier: each tier's "
            "share of members)", lambda m: _ratio(m.tiered, m.members), (Dimension.TIER,)),
        Kpi("points_issued", "Points issued", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "points earned",
            lambda m: Decimal(m.points_issued), ()),
        Kpi("points_redeemed", "Points redeemed", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "points spent on rewards",
            lambda m: Decimal(m.points_redeemed), ()),
        Kpi("points_liability", "Outstanding points", Unit.COUNT, Direction.LOWER_IS_BETTER, 1,
            "every points entry ever, up to the period's end (the balance owed)",
            lambda m: Decimal(m.points_liability), ()),
        Kpi("redemption_rate", "Redemption rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "points redeemed / points issued in the period", lambda m: _ratio(m.points_redeemed, m.points_issued),
            ()),
        Kpi("nps", "NPS", Unit.SCORE, Direction.HIGHER_IS_BETTER, 1,
            "(promoters - detractors) / responses x 100, with its 95% margin of error",
            lambda m: _score(m.survey.nps), benchmark="above 0 good, above 50 excellent"),
        Kpi("survey_responses", "Survey responses", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "NPS answers",
            lambda m: Decimal(m.survey.responses)),
        Kpi("survey_response_rate", "Survey response rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "invitations sent in the period that were answered / invitations sent in the period (skipped ones "
            "were not sent)", lambda m: _ratio(m.answered, m.invited)),
        Kpi("follow_up_on_time_rate", "Detractor follow-up on time", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "detractors' follow-up tasks due in the period (up to now) marked contacted or resolved by their due "
            "time / those tasks", lambda m: _ratio(m.follow_ups_on_time, m.follow_ups_due)),
        Kpi("map_compliance_rate", "MAP compliance rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "listings seen in the period that kept their price policy / listings a policy applied to",
            lambda m: _ratio(m.listings_within, m.listings_judged)),
        Kpi("open_conflicts", "Open channel conflicts", Unit.COUNT, Direction.LOWER_IS_BETTER, 1,
            "conflicts open at the period's end", lambda m: Decimal(m.open_conflicts)),
    ]
}  # fmt: skip
