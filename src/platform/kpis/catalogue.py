"""The KPI definitions shipped with Brandloop (formulas in docs/kpis.md). A definition's version
changes whenever its formula does; dashboards show which version they computed."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from brandloop.kpis.measures import Measures


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


@dataclass(frozen=True, slots=True)
class Kpi:
    key: str
    name: str
    unit: Unit
    direction: Direction
    version: int
    formula: str
    compute: Callable[[Measures], Decimal | None]
    by_channel: bool = True
    """Whether it breaks down by channel."""
    benchmark: str | None = None


KPIS: dict[str, Kpi] = {
    k.key: k
    for k in [
        Kpi("gmv", "GMV", Unit.MONEY, Direction.HIGHER_IS_BETTER, 1,
            "sum of paid orders' totals less refunds, in the reporting currency", lambda m: m.gmv),
        Kpi("orders", "Orders", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "paid orders", lambda m: Decimal(m.orders)),
        Kpi("aov", "Average order value", Unit.MONEY, Direction.HIGHER_IS_BETTER, 1, "GMV / orders",
            lambda m: _ratio(m.gmv, m.orders)),
        Kpi("new_customers", "New customers", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1,
            "customers whose first paid order ever falls in the period", lambda m: Decimal(m.new_customers)),
        Kpi("active_customers", "Active customers", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1,
            "customers with a paid order in the period", lambda m: Decimal(m.active_customers)),
        Kpi("repeat_purchase_rate", "Repeat-purchase rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "active customers with two or more paid orders in the period / active customers",
            lambda m: _ratio(m.repeat_customers, m.active_customers)),
        Kpi("retention_rate", "Retention rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "customers active in the period of the same length just before who are active again in this one / "
            "those customers (whole periods only: no series)", lambda m: _ratio(m.retained, m.previous_active)),
        Kpi("churn_rate", "Churn rate", Unit.PERCENT, Direction.LOWER_IS_BETTER, 1, "1 - retention rate",
            lambda m: 1 - m.retained / Decimal(m.previous_active) if m.previous_active else None),
        Kpi("private_domain_gmv_share", "Private-domain GMV share", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "GMV on the brand's own channels (wechat, mini_program, own_store) / GMV",
            lambda m: _ratio(m.private_gmv, m.gmv), by_channel=False),
        Kpi("channel_gmv_share", "Channel GMV share", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "a channel's GMV / all channels' GMV (broken down by channel)", lambda m: _ratio(m.gmv, m.all_gmv)),
        Kpi("marketing_spend", "Marketing spend", Unit.MONEY, Direction.LOWER_IS_BETTER, 1,
            "recorded spend, spread evenly over its days", lambda m: m.spend),
        Kpi("cac", "CAC", Unit.MONEY, Direction.LOWER_IS_BETTER, 1, "marketing spend / new customers",
            lambda m: _ratio(m.spend, m.new_customers)),
        Kpi("roi", "ROI", Unit.RATIO, Direction.HIGHER_IS_BETTER, 1, "(GMV - marketing spend) / marketing spend",
            lambda m: _ratio(m.gmv - m.spend, m.spend) if m.spend else None),
        Kpi("points_issued", "Points issued", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "points earned",
            lambda m: Decimal(m.points_issued), by_channel=False),
        Kpi("points_redeemed", "Points redeemed", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "points spent on rewards",
            lambda m: Decimal(m.points_redeemed), by_channel=False),
        Kpi("points_liability", "Outstanding points", Unit.COUNT, Direction.LOWER_IS_BETTER, 1,
            "every points entry ever, up to the period's end (the balance owed)",
            lambda m: Decimal(m.points_liability), by_channel=False),
        Kpi("redemption_rate", "Redemption rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "points redeemed / points issued in the period", lambda m: _ratio(m.points_redeemed, m.points_issued),
            by_channel=False),
        Kpi("nps", "NPS", Unit.SCORE, Direction.HIGHER_IS_BETTER, 1,
            "(promoters - detractors) / responses x 100, with its 95% margin of error",
            lambda m: _score(m.survey.nps), benchmark="above 0 good, above 50 excellent"),
        Kpi("survey_responses", "Survey responses", Unit.COUNT, Direction.HIGHER_IS_BETTER, 1, "NPS answers",
            lambda m: Decimal(m.survey.responses)),
        Kpi("map_compliance_rate", "MAP compliance rate", Unit.PERCENT, Direction.HIGHER_IS_BETTER, 1,
            "listings seen in the period that kept their price policy / listings a policy applied to",
            lambda m: _ratio(m.listings_within, m.listings_judged)),
        Kpi("open_conflicts", "Open channel conflicts", Unit.COUNT, Direction.LOWER_IS_BETTER, 1,
            "conflicts open at the period's end", lambda m: Decimal(m.open_conflicts)),
    ]
}  # fmt: skip
