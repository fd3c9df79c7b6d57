"""Segmentation: lifecycle stage, RFM scores and segment, value tier, for a whole tenant in one
SQL statement (docs/segmentation.md has the rules with a worked example).

Qualifying orders are paid, shipped, completed or partially refunded; their value is the total
less refunds, in the reporting currency at the rate of the order's day. Scores are quintiles by
cumulative distribution, ceil(5 * cume_dist), so that equal values always share a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from babel.numbers import get_currency_precision
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.customers.models import Customer
from brandloop.orders import service as orders
from brandloop.tenancy.service import settings_of

_RECOMPUTE = text(
    """
    WITH fx(currency, exponent) AS (
        SELECT * FROM unnest(CAST(:currencies AS text[]), CAST(:exponents AS int[]))
    ),
    qualifying AS (
        SELECT o.customer_id, o.placed_at,
               CASE WHEN o.currency = CAST(:reporting AS text) THEN (o.total - o.refunded)::numeric
                    ELSE (o.total - o.refunded) * r.rate * power(10::numeric, CAST(:reporting_exponent AS int) - fx.exponent)
               END AS amount
          FROM orders o
          JOIN fx ON fx.currency = o.currency
          LEFT JOIN LATERAL (
              SELECT rate FROM exchange_rates er
               WHERE er.currency = o.currency AND er.day <= (o.placed_at AT TIME ZONE CAST(:tz AS text))::date
               ORDER BY er.day DESC LIMIT 1) r ON o.currency <> CAST(:reporting AS text)
         WHERE o.customer_id IS NOT NULL AND o.status = ANY(:qualifying) AND o.placed_at <= CAST(:as_of AS timestamptz)
    ),
    buyers AS (
        SELECT customer_id,
               min(placed_at) AS first_at,
               max(placed_at) AS last_at,
               count(*) FILTER (WHERE placed_at > CAST(:as_of AS timestamptz) - make_interval(days => CAST(:window AS int))) AS frequency,
               coalesce(round(sum(amount) FILTER (WHERE placed_at > CAST(:as_of AS timestamptz) - make_interval(days => CAST(:window AS int)))), 0)
                   AS monetary,
               coalesce(round(sum(amount)), 0) AS lifetime
          FROM qualifying GROUP BY customer_id
    ),
    scored AS (
        SELECT b.*,
               CASE WHEN frequency > 0 THEN
                   ceil(5 * cume_dist() OVER (PARTITION BY frequency > 0 ORDER BY last_at)) END AS r,
               CASE WHEN frequency > 0 THEN
                   ceil(5 * cume_dist() OVER (PARTITION BY frequency > 0 ORDER BY frequency)) END AS f,
               CASE WHEN frequency > 0 THEN
                   ceil(5 * cume_dist() OVER (PARTITION BY frequency > 0 ORDER BY monetary)) END AS m,
               percent_rank() OVER (ORDER BY lifetime DESC) AS spend_rank,
               CASE WHEN CAST(:as_of AS timestamptz) - last_at > make_interval(days => CAST(:churned AS int)) THEN 'churned'
                    WHEN CAST(:as_of AS timestamptz) - last_at > make_interval(days => CAST(:dormant AS int)) THEN 'dormant'
                    WHEN CAST(:as_of AS timestamptz) - first_at <= make_interval(days => CAST(:dormant AS int)) THEN 'new'
                    ELSE 'active' END AS stage
          FROM buyers b
    ),
    profiles AS (
        SELECT c.id, s.*
          FROM customers c LEFT JOIN scored s ON s.customer_id = c.id
         WHERE c.merged_into_id IS NULL
    )
    UPDATE customers c SET
        first_order_at = p.first_at,
        last_order_at = p.last_at,
        recency_days = floor(extract(epoch FROM CAST(:as_of AS timestamptz) - p.last_at) / 86400),
        frequency = p.frequency,
        monetary = p.monetary,
        lifetime_spend = p.lifetime,
        r_score = p.r, f_score = p.f, m_score = p.m,
        lifecycle_stage = coalesce(p.stage, 'prospect'),
        rfm_segment = CASE
            WHEN p.stage IS NULL THEN NULL
            WHEN p.stage IN ('churned', 'new') THEN p.stage
            WHEN p.r >= 4 AND p.f >= 4 AND p.m >= 4 THEN 'core_loyal'
            WHEN p.r >= 4 THEN 'potential'
            ELSE 'dormant' END,
        value_tier = CASE
            WHEN p.stage IS NULL THEN 'prospect'
            WHEN p.spend_rank <= 0.01 THEN 'top'
            WHEN p.spend_rank <= 0.10 THEN 'high'
            WHEN p.spend_rank <= 0.30 THEN 'core'
            ELSE 'ordinary' END,
        scored_at = CAST(:as_of AS timestamptz)
      FROM profiles p
     WHERE c.id = p.id
    """
)


async def recompute(session: AsyncSession, *, as_of: datetime | None = None) -> int:
    """Score every active profile of the tenant as of a moment (now by default); returns how many."""
    settings = await settings_of(session)
    as_of = as_of or await session.scalar(select(func.now()))
    currencies = list(await session.scalars(text("SELECT DISTINCT currency FROM orders")))
    result = await session.execute(
        _RECOMPUTE,
        {
            "currencies": currencies,
            "exponents": [get_currency_precision(c) for c in currencies],
            "reporting": settings.reporting_currency,
            "reporting_exponent": get_currency_precision(settings.reporting_currency),
            "tz": settings.timezone,
            "qualifying": sorted(orders.PAID_STATUSES),
            "as_of": as_of,
            "window": settings.rfm_window_days,
            "dormant": settings.dormant_after_days,
            "churned": settings.churned_after_days,
        },
    )
    return int(getattr(result, "rowcount", 0))


@dataclass(frozen=True, slots=True)
class SegmentCount:
    segment: str | None
    """None for customers with no qualifying order yet (prospects)."""
    customers: int
    revenue: int
    """Spend in the RFM window, reporting-currency minor units."""


async def summary(session: AsyncSession) -> tuple[list[SegmentCount], datetime | None]:
    """Customers and window revenue per segment, and when the scores were computed."""
    rows = await session.execute(
        select(
            Customer.rfm_segment,
            func.count(),
            func.coalesce(func.sum(Customer.monetary), 0),
            func.max(Customer.scored_at),
        )
        .where(Customer.merged_into_id.is_(None))
        .group_by(Customer.rfm_segment)
        .order_by(Customer.rfm_segment)
    )
    counts, scored_at = [], None
    for segment, customers, revenue, scored in rows:
        counts.append(SegmentCount(segment, customers, int(revenue)))
        scored_at = max(filter(None, (scored_at, scored)), default=None)
    return counts, scored_at
