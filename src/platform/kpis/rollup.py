"""The daily roll-ups: rebuilt for a range of days in set-based SQL (one statement a table), and
kept up to date by the job `kpis.rollup` from the orders changed since it last looked.

A day is a day in the tenant's time zone. Money is converted to the reporting currency at the
latest rate on or before the order's day, per order, rounded half up; an order in a currency with
no rate counts in orders, not in GMV (`unconverted` says how many).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.db.session import current_tenant, take_turns
from brandloop.kpis.models import NO_CUSTOMER, NO_TIER, Watermark
from brandloop.orders.service import PAID_STATUSES
from brandloop.tenancy.service import settings_of

_CUSTOMER_DAYS = text(
    """
    INSERT INTO kpi_customer_days (tenant_id, day, channel, region, customer_id, orders, gmv, unconverted,
                                   first_day, member)
    SELECT :tenant, d.day, d.channel, d.region, d.customer, count(*), coalesce(sum(d.converted), 0),
           count(*) FILTER (WHERE d.converted IS NULL), false,
           coalesce(min(m.enrolled) < CAST(d.day + 1 AS timestamp) AT TIME ZONE :tz, false)
      FROM (
        SELECT (o.placed_at AT TIME ZONE :tz)::date AS day, o.channel, coalesce(o.ship_region, '') AS region,
               coalesce(o.customer_id, CAST(:nil AS uuid)) AS customer,
               CASE WHEN o.currency = :reporting THEN (o.total - o.refunded)::numeric
                    ELSE round((o.total - o.refunded) * r.rate
                               * power(10::numeric, :digits - (CAST(:precision AS jsonb) ->> o.currency)::int))
               END AS converted
          FROM orders o
          LEFT JOIN LATERAL (
            SELECT rate FROM exchange_rates r
             WHERE r.currency = o.currency AND r.day <= (o.placed_at AT TIME ZONE :tz)::date
             ORDER BY r.day DESC LIMIT 1) r ON o.currency <> :reporting
         WHERE o.status = ANY(:paid) AND o.placed_at >= :start AND o.placed_at < :end
      ) d
      -- Members' first enrolment, hashed once (a probe per customer-day chose poor plans).
      LEFT JOIN (SELECT customer_id, min(enrolled_at) AS enrolled FROM loyalty_accounts GROUP BY 1) m
        ON m.customer_id = d.customer
     GROUP BY d.day, d.channel, d.region, d.customer
    """
)
# A customer's first day is their first paid order ever, which may lie outside the rebuilt range.
_FIRST_DAYS = text(
    """
    WITH customers AS (
      SELECT DISTINCT customer_id FROM kpi_customer_days
       WHERE day BETWEEN :day_from AND :day_until AND customer_id <> CAST(:nil AS uuid)
    ), firsts AS (
      SELECT o.customer_id, min((o.placed_at AT TIME ZONE :tz)::date) AS first
        FROM orders o JOIN customers c ON c.customer_id = o.customer_id
       WHERE o.status = ANY(:paid)
       GROUP BY o.customer_id
    )
    UPDATE kpi_customer_days k SET first_day = (k.day = f.first)
      FROM firsts f
     WHERE k.customer_id = f.customer_id AND k.first_day IS DISTINCT FROM (k.day = f.first)
    """
)
_SURVEY_DAYS = text(
    """
    INSERT INTO kpi_survey_days (tenant_id, day, channel, promoters, passives, detractors)
    SELECT :tenant, (created_at AT TIME ZONE :tz)::date, channel,
           count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score BETWEEN 7 AND 8),
           count(*) FILTER (WHERE score <= 6)
      FROM nps_responses WHERE created_at >= :start AND created_at < :end
     GROUP BY 2, 3
    """
)
# Invitations by the day they were sent (skipped ones were not), and how many are answered so far.
_INVITATION_DAYS = text(
    """
    INSERT INTO kpi_survey_days (tenant_id, day, channel, promoters, passives, detractors, invited, answered)
    SELECT :tenant, (created_at AT TIME ZONE :tz)::date, channel, 0, 0, 0, count(*),
           count(*) FILTER (WHERE responded_at IS NOT NULL)
      FROM nps_invitations WHERE created_at >= :start AND created_at < :end AND status <> 'skipped'
     GROUP BY 2, 3
    ON CONFLICT (tenant_id, day, channel) DO UPDATE SET invited = excluded.invited, answered = excluded.answered
    """
)
# An enrolment adds a member without a tier; a tier change moves one from a tier to another.
_TIER_DAYS = text(
    """
    INSERT INTO kpi_tier_days (tenant_id, day, tier_id, net)
    SELECT :tenant, day, tier, sum(n)
      FROM (SELECT (enrolled_at AT TIME ZONE :tz)::date AS day, CAST(:none AS uuid) AS tier, 1 AS n
              FROM loyalty_accounts WHERE enrolled_at >= :start AND enrolled_at < :end
            UNION ALL
            SELECT (changed_at AT TIME ZONE :tz)::date, unnest(ARRAY[coalesce(from_tier_id, :none),
                   coalesce(to_tier_id, :none)]), unnest(ARRAY[-1, 1])
              FROM loyalty_tier_changes WHERE changed_at >= :start AND changed_at < :end) c
     GROUP BY 2, 3
    HAVING sum(n) <> 0
    """
)
_POINTS_DAYS = text(
    """
    INSERT INTO kpi_points_days (tenant_id, day, issued, redeemed, expired, net)
    SELECT :tenant, (effective_at AT TIME ZONE :tz)::date,
           coalesce(sum(delta) FILTER (WHERE kind = 'earn'), 0),
           coalesce(-sum(delta) FILTER (WHERE kind = 'redeem'), 0),
           coalesce(-sum(delta) FILTER (WHERE kind = 'expire'), 0),
           sum(delta)
      FROM loyalty_ledger WHERE effective_at >= :start AND effective_at < :end
     GROUP BY 2
    """
)
# The days whose roll-ups changed since the job last looked (five minutes back, for transactions
# that committed late): orders changed, invitations answered.
_CHANGED_DAYS = text(
    """
    WITH since AS (SELECT coalesce((SELECT read_until FROM kpi_watermarks), '-infinity') - interval '5 minutes' AS at)
    SELECT (placed_at AT TIME ZONE :tz)::date FROM orders WHERE updated_at > (SELECT at FROM since)
     UNION
    SELECT (created_at AT TIME ZONE :tz)::date FROM nps_invitations WHERE responded_at > (SELECT at FROM since)
    """
)


PRECISION = json.dumps({c: get_currency_precision(c) for c in list_currencies()})
"""Every currency's minor-unit digits, for converting in SQL (orders hold only known currencies)."""


def _bounds(day_from: date, day_until: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return (
        datetime.combine(day_from, time(), tz).astimezone(UTC),
        datetime.combine(day_until + timedelta(days=1), time(), tz).astimezone(UTC),
    )


async def rebuild(session: AsyncSession, day_from: date, day_until: date) -> None:
    """Recompute every roll-up for [day_from, day_until] from the raw data, in the caller's
    transaction: what was there is replaced, so a rebuild is always safe to repeat."""
    await take_turns(session, "kpis.rollup")  # two rebuilds of the same days would insert twice
    settings = await settings_of(session)
    tenant, zone, reporting = current_tenant(session), settings.timezone, settings.reporting_currency
    start, end = _bounds(day_from, day_until, zone)
    days = {"day_from": day_from, "day_until": day_until}
    common = {"tenant": tenant, "tz": zone, "start": start, "end": end}
    for table in ("kpi_customer_days", "kpi_survey_days", "kpi_points_days", "kpi_tier_days"):
        await session.execute(text(f"DELETE FROM {table} WHERE day BETWEEN :day_from AND :day_until"), days)  # noqa: S608
    await session.execute(
        _CUSTOMER_DAYS,
        {**common, "nil": NO_CUSTOMER, "reporting": reporting, "digits": get_currency_precision(reporting),
         "precision": PRECISION, "paid": sorted(PAID_STATUSES)},
    )  # fmt: skip
    await session.execute(
        _FIRST_DAYS, {**days, "tz": zone, "nil": NO_CUSTOMER, "paid": sorted(PAID_STATUSES)}
    )
    await session.execute(_SURVEY_DAYS, common)
    await session.execute(_INVITATION_DAYS, common)
    await session.execute(_POINTS_DAYS, common)
    await session.execute(_TIER_DAYS, {**common, "none": NO_TIER})


async def catch_up(session: AsyncSession, *, now: datetime | None = None) -> int:
    """The job `kpis.rollup`: rebuild the days changed since the last run (_CHANGED_DAYS) and
    the last two days, whose surveys, points and loyalty members only ever change now. Returns
    how many days were rebuilt."""
    now = now or datetime.now(UTC)
    await take_turns(session, "kpis.rollup")  # the watermark is read and moved by one at a time
    settings = await settings_of(session)
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    days = sorted(
        set(await session.scalars(_CHANGED_DAYS, {"tz": settings.timezone}))
        | {today, today - timedelta(days=1)}
    )
    # Neighbouring days are rebuilt together: one statement a table per run of days.
    start = previous = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == previous + timedelta(days=1):
            previous = day
            continue
        await rebuild(session, start, previous)
        if day is not None:
            start = previous = day
    await session.execute(
        pg_insert(Watermark)
        .values(tenant_id=current_tenant(session), read_until=now)
        .on_conflict_do_update(index_elements=[Watermark.tenant_id], set_={"read_until": now})
    )
    return len(days)
