"""The base measures every KPI is a formula over, read from the daily roll-ups (never from raw
orders), for a period or for each day, week, month or quarter of it, overall or per channel."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from dateutil.relativedelta import relativedelta
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.kpis.models import NO_CUSTOMER, Spend
from brandloop.nps.service import Counts
from brandloop.tenancy.service import settings_of

PRIVATE_DOMAIN = ("wechat", "mini_program", "own_store")
"""The brand's own channels, for the private-domain GMV share."""


@dataclass(slots=True)
class Measures:
    orders: int = 0
    gmv: Decimal = Decimal(0)
    private_gmv: Decimal = Decimal(0)
    all_gmv: Decimal | None = None
    """Every channel's GMV in the same bucket (for a channel's share)."""
    active_customers: int = 0
    new_customers: int = 0
    repeat_customers: int = 0
    spend: Decimal = Decimal(0)
    points_issued: int = 0
    points_redeemed: int = 0
    points_liability: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    open_conflicts: int = 0
    previous_active: int = 0
    """Customers active in the period of the same length just before."""
    retained: int = 0
    """Of those, the ones active again in this period."""
    listings_judged: int = 0
    listings_within: int = 0

    @property
    def survey(self) -> Counts:
        return Counts(
            self.promoters + self.passives + self.detractors, self.promoters, self.passives, self.detractors
        )


def buckets(since: date, until: date, grain: str | None) -> list[tuple[date, date]]:
    """[start, end] of each bucket of [since, until] (weeks start on Monday), clipped to it."""
    if grain is None:
        return [(since, until)]
    step = {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1),
            "quarter": relativedelta(months=3)}[grain]  # fmt: skip
    start = _calendar_start(since, grain)
    found = []
    while start <= until:
        end = start + step - timedelta(days=1)
        found.append((max(start, since), min(end, until)))
        start = start + step
    return found


_CUSTOMERS = """
    WITH per AS (
      SELECT {bucket} AS bucket, {channel} AS channel, customer_id, sum(orders) AS o, sum(gmv) AS g,
             sum(gmv) FILTER (WHERE channel = ANY(:private)) AS pg, bool_or(first_day) AS f
        FROM kpi_customer_days WHERE day BETWEEN :since AND :until
       GROUP BY 1, 2, 3)
    SELECT bucket, channel, sum(o) AS orders, sum(g) AS gmv, coalesce(sum(pg), 0) AS private_gmv,
           count(*) FILTER (WHERE customer_id <> :nil) AS active,
           count(*) FILTER (WHERE f AND customer_id <> :nil) AS new,
           count(*) FILTER (WHERE o >= 2 AND customer_id <> :nil) AS repeat
      FROM per GROUP BY 1, 2
"""
_SURVEYS = """
    SELECT {bucket} AS bucket, {channel} AS channel, sum(promoters) AS p, sum(passives) AS s, sum(detractors) AS d
      FROM kpi_survey_days WHERE day BETWEEN :since AND :until GROUP BY 1, 2
"""
_POINTS = """
    SELECT {bucket} AS bucket, sum(issued) AS issued, sum(redeemed) AS redeemed, sum(net) AS net
      FROM kpi_points_days WHERE day BETWEEN :since AND :until GROUP BY 1
"""
_POINTS_BEFORE = "SELECT coalesce(sum(net), 0) FROM kpi_points_days WHERE day < :since"
_RETENTION = """
    SELECT channel, count(*) FILTER (WHERE before) AS previous, count(*) FILTER (WHERE before AND during) AS retained
      FROM (SELECT customer_id, {channel} AS channel, bool_or(day < :since) AS before, bool_or(day >= :since) AS during
              FROM kpi_customer_days
             WHERE day BETWEEN :before AND :until AND customer_id <> :nil
             GROUP BY 1, 2) c
     GROUP BY 1
"""
_LISTINGS = """
    SELECT e.start, {channel} AS channel, count(*) AS judged, count(*) FILTER (WHERE o.within_policy) AS within
      FROM unnest(CAST(:starts AS date[]), CAST(:from_at AS timestamptz[]), CAST(:until_at AS timestamptz[]))
        AS e(start, from_at, until_at)
      JOIN listing_observations o ON o.observed_at >= e.from_at AND o.observed_at < e.until_at
     WHERE o.within_policy IS NOT NULL
     GROUP BY 1, 2
"""
_OPEN_CONFLICTS = """
    SELECT e.start, {channel} AS channel, count(c.id) AS n
      FROM unnest(CAST(:starts AS date[]), CAST(:ends AS timestamptz[])) AS e(start, at)
      JOIN conflicts c ON c.opened_at < e.at AND (c.closed_at IS NULL OR c.closed_at >= e.at)
     GROUP BY 1, 2
"""


def _bucket_sql(grain: str | None) -> str:
    if grain is None:
        return "CAST(:since AS date)"
    if grain == "day":
        return "day"
    return f"date_trunc('{grain}', day)::date"


async def measure(
    session: AsyncSession, since: date, until: date, *, grain: str | None, by_channel: bool
) -> dict[tuple[date, str | None], Measures]:
    """Measures for each (bucket start, channel) of [since, until]; channel None without a
    breakdown. Buckets clipped to the period are keyed by their clipped start."""
    settings = await settings_of(session)
    scale = Decimal(10) ** get_currency_precision(settings.reporting_currency)
    spans = buckets(since, until, grain)
    # date_trunc gives a bucket's calendar start; the first bucket may be clipped to `since`.
    clipped = {_calendar_start(s, grain): s for s, _ in spans}

    def key(start: date) -> date:
        return clipped.get(start, start)

    channel = "channel" if by_channel else "NULL::text"
    found: dict[tuple[date, str | None], Measures] = defaultdict(Measures)
    period = {"since": since, "until": until}
    rows = await session.execute(
        text(_CUSTOMERS.format(bucket=_bucket_sql(grain), channel=channel)),
        {**period, "private": list(PRIVATE_DOMAIN), "nil": NO_CUSTOMER},
    )
    for r in rows:
        m = found[(key(r.bucket), r.channel)]
        m.orders, m.gmv, m.private_gmv = int(r.orders), Decimal(r.gmv) / scale, Decimal(r.private_gmv) / scale
        m.active_customers, m.new_customers, m.repeat_customers = r.active, r.new, r.repeat
    for r in await session.execute(text(_SURVEYS.format(bucket=_bucket_sql(grain), channel=channel)), period):
        m = found[(key(r.bucket), r.channel)]
        m.promoters, m.passives, m.detractors = int(r.p), int(r.s), int(r.d)
    if not by_channel:  # points belong to no channel
        liability = int(await session.scalar(text(_POINTS_BEFORE), period) or 0)
        points = {
            key(r.bucket): r
            for r in await session.execute(text(_POINTS.format(bucket=_bucket_sql(grain))), period)
        }
        for start, _ in spans:
            m = found[(start, None)]
            if (day := points.get(start)) is not None:
                liability += int(day.net)
                m.points_issued, m.points_redeemed = int(day.issued), int(day.redeemed)
            m.points_liability = liability
    tz = ZoneInfo(settings.timezone)
    ends = [datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC) for _, end in spans]
    conflicts = await session.execute(
        text(_OPEN_CONFLICTS.format(channel="c.channel" if by_channel else "NULL::text")),
        {"starts": [s for s, _ in spans], "ends": ends},
    )
    for r in conflicts:
        found[(r.start, r.channel)].open_conflicts = r.n
    starts = [s for s, _ in spans]
    if grain is None:  # retention compares whole periods: one scan of both, no series
        before = since - (until - since) - timedelta(days=1)
        retention = await session.execute(
            text(_RETENTION.format(channel="channel" if by_channel else "NULL::text")),
            {"since": since, "until": until, "before": before, "nil": NO_CUSTOMER},
        )
        for r in retention:
            m = found[(since, r.channel)]
            m.previous_active, m.retained = r.previous, r.retained
    listings = await session.execute(
        text(_LISTINGS.format(channel="o.channel" if by_channel else "NULL::text")),
        {
            "starts": starts,
            "from_at": [datetime.combine(s, time(), tz).astimezone(UTC) for s in starts],
            "until_at": ends,
        },
    )
    for r in listings:
        m = found[(r.start, r.channel)]
        m.listings_judged, m.listings_within = r.judged, r.within
    await _spread_spend(session, spans, by_channel, scale, found)
    if by_channel:
        totals: dict[date, Decimal] = defaultdict(Decimal)
        for (bucket, _channel), m in found.items():
            totals[bucket] += m.gmv
        for (bucket, _channel), m in found.items():
            m.all_gmv = totals[bucket]
    return dict(found)


def _calendar_start(day: date, grain: str | None) -> date:
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return day.replace(day=1, month=3 * ((day.month - 1) // 3) + 1)
    return day


async def _spread_spend(
    session: AsyncSession,
    spans: list[tuple[date, date]],
    by_channel: bool,
    scale: Decimal,
    found: dict[tuple[date, str | None], Measures],
) -> None:
    """Each spend spread evenly over its days; a bucket gets the share of the days it covers."""
    since, until = spans[0][0], spans[-1][1]
    rows = await session.scalars(select(Spend).where(Spend.day_from <= until, Spend.day_until >= since))
    for spend in rows:
        days = (spend.day_until - spend.day_from).days + 1
        for start, end in spans:
            overlap = (min(end, spend.day_until) - max(start, spend.day_from)).days + 1
            if overlap > 0:
                m = found[(start, spend.channel if by_channel else None)]
                m.spend += Decimal(spend.amount) * overlap / days / scale
