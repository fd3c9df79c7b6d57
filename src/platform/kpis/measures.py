"""The base measures every KPI is a formula over, read from the daily roll-ups (never from raw
orders), for a period or for each day, week, month or quarter of it, overall or per channel."""

from __future__ import annotations

import enum
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


class Dimension(enum.StrEnum):
    """What a KPI breaks down by."""

    CHANNEL = "channel"
    REGION = "region"
    """Where orders shipped; 'unknown' when the platform did not say."""
    SEGMENT = "segment"
    """The customer's RFM segment now; 'unscored' before the segmentation job saw them, 'no_buyer'
    for orders without a known buyer."""
    TIER = "tier"
    """Loyalty tiers by name; 'no tier' for members below the entry tier."""


@dataclass(slots=True)
class Measures:
    orders: int = 0
    gmv: Decimal = Decimal(0)
    private_gmv: Decimal = Decimal(0)
    all_gmv: Decimal | None = None
    """Every breakdown row's GMV in the same bucket (for a channel's share)."""
    active_customers: int = 0
    new_customers: int = 0
    repeat_customers: int = 0
    buying_members: int = 0
    """Active customers who were loyalty members when they bought."""
    repeat_members: int = 0
    """Of those, the ones with two or more paid orders in the period."""
    spend: Decimal = Decimal(0)
    points_issued: int = 0
    points_redeemed: int = 0
    points_liability: int = 0
    members: int = 0
    """Loyalty members at the period's end."""
    tiered: int = 0
    """Of those, the ones holding a tier above the entry one (in a tier breakdown: the row's tier)."""
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    invited: int = 0
    """Survey invitations sent in the period."""
    answered: int = 0
    """Of those, the ones answered."""
    follow_ups_due: int = 0
    """Detractors' follow-up tasks that fell due in the period (up to now)."""
    follow_ups_on_time: int = 0
    """Of those, the ones marked contacted or resolved by their due time."""
    open_conflicts: int = 0
    previous_active: int = 0
    """Customers active in the period of the same length just before."""
    retained: int = 0
    """Of those, the ones active again in this period."""
    cohort: int = 0
    """Customers acquired (first paid order ever) in the period of the same length just before."""
    cohort_retained: int = 0
    """Of those, the ones who bought again in this period."""
    listings_judged: int = 0
    listings_within: int = 0
    gross_margin: Decimal | None = None
    """The tenant's setting, for CLV."""

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


# Customer roll-ups group by customer first (in `per`), then by the dimension: a segment is the
# customer's, read from the profile once per customer.
_CUSTOMERS = """
    WITH per AS (
      SELECT {bucket} AS bucket, {row_dim} AS dim, customer_id, sum(orders) AS o, sum(gmv) AS g,
             sum(gmv) FILTER (WHERE channel = ANY(:private)) AS pg, bool_or(first_day) AS f, bool_or(member) AS mb
        FROM kpi_customer_days WHERE day BETWEEN :since AND :until
       GROUP BY 1, 2, 3)
    SELECT bucket, {dim} AS dim, sum(o) AS orders, sum(g) AS gmv, coalesce(sum(pg), 0) AS private_gmv,
           count(*) FILTER (WHERE per.customer_id <> :nil) AS active,
           count(*) FILTER (WHERE f AND per.customer_id <> :nil) AS new,
           count(*) FILTER (WHERE o >= 2 AND per.customer_id <> :nil) AS repeat,
           count(*) FILTER (WHERE mb) AS members, count(*) FILTER (WHERE mb AND o >= 2) AS repeat_members
      FROM per {join} GROUP BY 1, 2
"""
_RETENTION = """
    SELECT {dim} AS dim, count(*) FILTER (WHERE before) AS previous,
           count(*) FILTER (WHERE before AND during) AS retained, count(*) FILTER (WHERE joined) AS cohort,
           count(*) FILTER (WHERE joined AND during) AS cohort_retained
      FROM (SELECT customer_id, {row_dim} AS dim, bool_or(day < :since) AS before, bool_or(day >= :since) AS during,
                   bool_or(day < :since AND first_day) AS joined
              FROM kpi_customer_days
             WHERE day BETWEEN :before AND :until AND customer_id <> :nil
             GROUP BY 1, 2) per {join}
     GROUP BY 1
"""
_SURVEYS = """
    SELECT {bucket} AS bucket, {dim} AS dim, sum(promoters) AS p, sum(passives) AS s, sum(detractors) AS d,
           sum(invited) AS invited, sum(answered) AS answered
      FROM kpi_survey_days WHERE day BETWEEN :since AND :until GROUP BY 1, 2
"""
_POINTS = """
    SELECT {bucket} AS bucket, sum(issued) AS issued, sum(redeemed) AS redeemed, sum(net) AS net
      FROM kpi_points_days WHERE day BETWEEN :since AND :until GROUP BY 1
"""
_POINTS_BEFORE = "SELECT coalesce(sum(net), 0) FROM kpi_points_days WHERE day < :since"
_MEMBERS = """
    SELECT e.start, {dim} AS dim, sum(k.net) AS members, coalesce(sum(k.net) FILTER (WHERE t.rank >= 1), 0) AS tiered
      FROM unnest(CAST(:starts AS date[]), CAST(:lasts AS date[])) AS e(start, last)
      JOIN kpi_tier_days k ON k.day <= e.last
      LEFT JOIN loyalty_tiers t ON t.id = k.tier_id
     GROUP BY 1, 2
    HAVING sum(k.net) <> 0
"""
_FOLLOW_UPS = """
    SELECT e.start, {dim} AS dim, count(*) AS due, count(*) FILTER (WHERE t.followed_up_at <= t.due_at) AS on_time
      FROM unnest(CAST(:starts AS date[]), CAST(:from_at AS timestamptz[]), CAST(:until_at AS timestamptz[]))
        AS e(start, from_at, until_at)
      JOIN nps_tasks t ON t.due_at >= e.from_at AND t.due_at < least(e.until_at, now())
      JOIN nps_responses r ON r.id = t.response_id AND r.score <= 6
     GROUP BY 1, 2
"""
_LISTINGS = """
    SELECT e.start, {dim} AS dim, count(*) AS judged, count(*) FILTER (WHERE o.within_policy) AS within
      FROM unnest(CAST(:starts AS date[]), CAST(:from_at AS timestamptz[]), CAST(:until_at AS timestamptz[]))
        AS e(start, from_at, until_at)
      JOIN listing_observations o ON o.observed_at >= e.from_at AND o.observed_at < e.until_at
     WHERE o.within_policy IS NOT NULL
     GROUP BY 1, 2
"""
_OPEN_CONFLICTS = """
    SELECT e.start, {dim} AS dim, count(c.id) AS n
      FROM unnest(CAST(:starts AS date[]), CAST(:ends AS timestamptz[])) AS e(start, at)
      JOIN conflicts c ON c.opened_at < e.at AND (c.closed_at IS NULL OR c.closed_at >= e.at)
     GROUP BY 1, 2
"""
_NONE = "NULL::text"
_SEGMENT = "CASE WHEN per.customer_id = :nil THEN 'no_buyer' ELSE coalesce(c.rfm_segment, 'unscored') END"


def _bucket_sql(grain: str | None) -> str:
    if grain is None:
        return "CAST(:since AS date)"
    if grain == "day":
        return "day"
    return f"date_trunc('{grain}', day)::date"


def _customer_sql(by: Dimension | None) -> dict[str, str]:
    """How the customer roll-ups read a dimension: on each row, or from the customer's profile."""
    if by in (Dimension.CHANNEL, Dimension.REGION):
        return {
            "row_dim": by.value,
            "dim": "CASE WHEN per.dim = '' THEN 'unknown' ELSE per.dim END",
            "join": "",
        }
    if by is Dimension.SEGMENT:
        return {"row_dim": _NONE, "dim": _SEGMENT, "join": "LEFT JOIN customers c ON c.id = per.customer_id"}
    return {"row_dim": _NONE, "dim": _NONE, "join": ""}


async def measure(
    session: AsyncSession,
    since: date,
    until: date,
    *,
    grain: str | None,
    by: Dimension | None,
    retention: bool = True,
) -> dict[tuple[date, str | None], Measures]:
    """Measures for each (bucket start, dimension value) of [since, until]; value None without a
    breakdown. Buckets clipped to the period are keyed by their clipped start. A breakdown fills
    only the measures that have the dimension (KPIs declare theirs). `retention` (whole periods
    only) reads the period before as well: leave it out when no KPI asked needs it."""
    settings = await settings_of(session)
    scale = Decimal(10) ** get_currency_precision(settings.reporting_currency)
    spans = buckets(since, until, grain)
    # date_trunc gives a bucket's calendar start; the first bucket may be clipped to `since`.
    clipped = {_calendar_start(s, grain): s for s, _ in spans}

    def key(start: date) -> date:
        return clipped.get(start, start)

    found: dict[tuple[date, str | None], Measures] = defaultdict(
        lambda: Measures(gross_margin=settings.gross_margin)
    )
    period = {"since": since, "until": until}
    bucket = _bucket_sql(grain)
    channel_only = by in (None, Dimension.CHANNEL)
    if by is not Dimension.TIER:
        rows = await session.execute(
            text(_CUSTOMERS.format(bucket=bucket, **_customer_sql(by))),
            {**period, "private": list(PRIVATE_DOMAIN), "nil": NO_CUSTOMER},
        )
        for r in rows:
            m = found[(key(r.bucket), r.dim)]
            m.orders, m.gmv, m.private_gmv = (
                int(r.orders),
                Decimal(r.gmv) / scale,
                Decimal(r.private_gmv) / scale,
            )
            m.active_customers, m.new_customers, m.repeat_customers = r.active, r.new, r.repeat
            m.buying_members, m.repeat_members = r.members, r.repeat_members
        if grain is None and retention:  # whole periods: one scan of both, no series
            before = since - (until - since) - timedelta(days=1)
            returning = await session.execute(
                text(_RETENTION.format(**_customer_sql(by))),
                {"since": since, "until": until, "before": before, "nil": NO_CUSTOMER},
            )
            for r in returning:
                m = found[(since, r.dim)]
                m.previous_active, m.retained, m.cohort, m.cohort_retained = (
                    r.previous, r.retained, r.cohort, r.cohort_retained
                )  # fmt: skip
    if channel_only:
        surveys = await session.execute(
            text(_SURVEYS.format(bucket=bucket, dim="channel" if by else _NONE)), period
        )
        for r in surveys:
            m = found[(key(r.bucket), r.dim)]
            m.promoters, m.passives, m.detractors = int(r.p), int(r.s), int(r.d)
            m.invited, m.answered = int(r.invited), int(r.answered)
    starts = [s for s, _ in spans]
    if by is None:  # points belong to no channel
        liability = int(await session.scalar(text(_POINTS_BEFORE), period) or 0)
        points = {
            key(r.bucket): r for r in await session.execute(text(_POINTS.format(bucket=bucket)), period)
        }
        for start in starts:
            m = found[(start, None)]
            if (day := points.get(start)) is not None:
                liability += int(day.net)
                m.points_issued, m.points_redeemed = int(day.issued), int(day.redeemed)
            m.points_liability = liability
    if by in (None, Dimension.TIER):
        await _members(session, spans, by, found)
    tz = ZoneInfo(settings.timezone)
    ends = [datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC) for _, end in spans]
    if channel_only:
        within = {
            "starts": starts,
            "from_at": [datetime.combine(s, time(), tz).astimezone(UTC) for s in starts],
            "until_at": ends,
        }
        for r in await session.execute(text(_FOLLOW_UPS.format(dim="r.channel" if by else _NONE)), within):
            m = found[(r.start, r.dim)]
            m.follow_ups_due, m.follow_ups_on_time = r.due, r.on_time
        for r in await session.execute(text(_LISTINGS.format(dim="o.channel" if by else _NONE)), within):
            m = found[(r.start, r.dim)]
            m.listings_judged, m.listings_within = r.judged, r.within
        conflicts = await session.execute(
            text(_OPEN_CONFLICTS.format(dim="c.channel" if by else _NONE)), {"starts": starts, "ends": ends}
        )
        for r in conflicts:
            found[(r.start, r.dim)].open_conflicts = r.n
        await _spread_spend(session, spans, by is not None, scale, found)
    if by is not None:
        totals: dict[date, Decimal] = defaultdict(Decimal)
        for (start, _value), m in found.items():
            totals[start] += m.gmv
        for (start, _value), m in found.items():
            m.all_gmv = totals[start]
    return dict(found)


async def _members(
    session: AsyncSession,
    spans: list[tuple[date, date]],
    by: Dimension | None,
    found: dict[tuple[date, str | None], Measures],
) -> None:
    """Members at each bucket's end: the running sum of the tier roll-up up to it."""
    rows = await session.execute(
        text(_MEMBERS.format(dim="coalesce(t.name, 'no tier')" if by else _NONE)),
        {"starts": [s for s, _ in spans], "lasts": [e for _, e in spans]},
    )
    members: dict[date, int] = defaultdict(int)
    for r in rows:
        m = found[(r.start, r.dim)]
        m.tiered = int(r.members) if by else int(r.tiered)
        members[r.start] += int(r.members)
    for (start, _value), m in found.items():
        m.members = members[start]


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
