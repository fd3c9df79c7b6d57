"""Listing observations and detection: listings judged against the price policies and orders
against their sellers' territories, breaches opening or joining conflicts (docs/conflicts.md)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import func, literal_column, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.conflicts.models import (
    Cause,
    Conflict,
    ConflictStatus,
    ConflictType,
    Event,
    Evidence,
    Observation,
    Partner,
    PartnerLevel,
    Watermark,
)
from brandloop.conflicts.service import check, raise_problems
from brandloop.db.base import uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.orders.service import CHANNEL, MAX_SKU, REGION
from brandloop.tenancy.service import is_currency, settings_of

MAX_OBSERVATIONS = 500
SYSTEM = "system:detection"


# -- observations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservationInput:
    channel: str
    sku: str
    seller_id: str
    price: int
    currency: str
    observed_at: datetime
    seller_name: str | None = None
    region: str | None = None
    url: str | None = None
    listing_id: str | None = None


def observation_row(session: AsyncSession, o: ObservationInput, where: str = "observation") -> dict[str, Any]:
    """A listing as stored, or InvalidInput saying what is wrong with it."""
    problems: list[Problem] = []
    currency = o.currency.strip().upper()
    check(bool(CHANNEL.match(o.channel)), problems, f"{where}.channel", "INVALID_CHANNEL", "A channel key.")
    check(0 < len(o.sku.strip()) <= MAX_SKU, problems, f"{where}.sku", "INVALID_LENGTH", "A SKU of 1 to 64.")
    check(
        0 < len(o.seller_id) <= 128,
        problems,
        f"{where}.sellerId",
        "INVALID_LENGTH",
        "A seller id of 1 to 128.",
    )
    check(0 <= o.price <= 10**12, problems, f"{where}.price", "INVALID_AMOUNT", "A price in minor units.")
    check(is_currency(currency), problems, f"{where}.currency", "INVALID_CURRENCY", "An ISO 4217 code.")
    check(
        o.observed_at.tzinfo is not None,
        problems,
        f"{where}.observedAt",
        "MISSING_TIMEZONE",
        "Give the offset.",
    )
    check(
        o.region is None or bool(REGION.match(o.region)),
        problems,
        f"{where}.region",
        "INVALID_REGION",
        "ISO 3166-2.",
    )
    check(o.url is None or len(o.url) <= 2000, problems, f"{where}.url", "INVALID_LENGTH", "At most 2,000.")
    raise_problems(problems)
    return {
        "tenant_id": current_tenant(session), "id": uuid7(), "channel": o.channel, "sku": o.sku.strip(),
        "seller_id": o.seller_id, "seller_name": (o.seller_name or "")[:200] or None, "price": o.price,
        "currency": currency, "digits": get_currency_precision(currency), "region": o.region, "url": o.url,
        "listing_id": (o.listing_id or "")[:128] or None, "observed_at": o.observed_at,
    }  # fmt: skip


async def store_observations(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(pg_insert(Observation), list(rows))


async def record_observations(session: AsyncSession, given: Sequence[ObservationInput]) -> int:
    """Store listings as seen (a partner's integration); all or none. Detection judges them."""
    if not 0 < len(given) <= MAX_OBSERVATIONS:
        raise InvalidInput(
            Problem("observations", "INVALID_COUNT", f"Send 1 to {MAX_OBSERVATIONS} observations at a time.")
        )
    rows, problems = [], []
    for n, o in enumerate(given):
        try:
            rows.append(observation_row(session, o, f"observations.{n}"))
        except InvalidInput as error:
            problems += error.problems
    raise_problems(problems)
    await store_observations(session, rows)
    return len(rows)


# -- detection -------------------------------------------------------------------------------------

_JUDGE = text(
    """
    WITH batch AS (
      SELECT * FROM listing_observations
       WHERE checked_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    ), judged AS (
      SELECT b.id, b.channel, b.sku, b.price, b.currency, b.region, b.url, b.listing_id, b.observed_at,
             p.id AS partner_id, p.authorised,
             pol.id AS policy_id, pol.min_price, pol.currency AS policy_currency, pol.digits AS policy_digits,
             -- Rates are looked up only for a listing in another currency than its policy.
             b.price::numeric / 10 ^ b.digits * CASE
               WHEN b.currency = pol.currency THEN 1
               ELSE coalesce((SELECT rate FROM exchange_rates r WHERE r.currency = b.currency
                                 AND r.day <= b.observed_at::date ORDER BY r.day DESC LIMIT 1),
                             CASE WHEN b.currency = :reporting THEN 1 END)
                  / coalesce((SELECT rate FROM exchange_rates r WHERE r.currency = pol.currency
                                 AND r.day <= b.observed_at::date ORDER BY r.day DESC LIMIT 1),
                             CASE WHEN pol.currency = :reporting THEN 1 END)
             END AS converted
        FROM batch b
        JOIN channel_partners p ON p.channel = b.channel AND p.seller_id = b.seller_id
        LEFT JOIN LATERAL (
          SELECT * FROM price_policies pol
           WHERE pol.sku = b.sku AND (pol.channel IS NULL OR pol.channel = b.channel)
             AND pol.valid_from <= b.observed_at AND (pol.valid_until IS NULL OR pol.valid_until > b.observed_at)
           ORDER BY pol.channel IS NULL, pol.valid_from DESC LIMIT 1) pol ON true
    )
    SELECT j.*, j.min_price::numeric / 10 ^ j.policy_digits AS floor,
           EXISTS (
             SELECT 1 FROM price_exceptions e
              WHERE e.policy_id = j.policy_id AND j.observed_at >= e.starts_at AND j.observed_at < e.ends_at
                AND (j.partner_id = ANY(e.partner_ids) OR j.channel = ANY(e.channels))
                AND j.converted >= e.min_price::numeric / 10 ^ j.policy_digits
           ) AS excepted
      FROM judged j
    """
)

_MARK = text(
    "UPDATE listing_observations SET checked_at = :now, within_policy = :within WHERE id = ANY(:ids)"
)

_BACK_WITHIN = text(
    """
    SELECT c.id, c.status FROM conflicts c JOIN channel_partners p ON p.id = c.partner_id
     WHERE c.cause = 'below_map' AND c.status NOT IN ('resolved', 'dismissed')
       AND c.last_breach_at < CAST(:now AS timestamptz) - make_interval(hours => :hours)
       AND EXISTS (
         SELECT 1 FROM listing_observations o
          WHERE o.channel = p.channel AND o.seller_id = p.seller_id AND o.sku = c.sku
            AND o.within_policy AND o.observed_at > c.last_breach_at)
     FOR UPDATE OF c SKIP LOCKED
    """
)


@dataclass(slots=True)
class Detection:
    checked: int = 0
    opened: int = 0
    joined: int = 0
    resolved: int = 0


@dataclass(slots=True)
class _Breach:
    """What one run found against one partner, SKU and cause: the evidence and its extent."""

    partner_id: uuid.UUID
    sku: str | None
    cause: Cause
    channel: str
    region: str | None
    policy_id: uuid.UUID | None
    first_at: datetime
    last_at: datetime
    gap: Decimal = Decimal(0)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def add(self, at: datetime, region: str | None, **evidence: Any) -> None:
        self.first_at, self.last_at = min(self.first_at, at), max(self.last_at, at)
        self.region = region or self.region
        self.evidence.append({
            "observation_id": None, "order_id": None, "price": None, "currency": None, "policy_price": None,
            "policy_currency": None, "url": None, "listing_id": None, "notes": None, "region": region,
            "observed_at": at, **evidence,
        })  # fmt: skip


class _Found(dict[tuple[uuid.UUID, str | None, Cause], _Breach]):
    def breach(
        self,
        partner_id: uuid.UUID,
        sku: str | None,
        cause: Cause,
        channel: str,
        at: datetime,
        policy_id: uuid.UUID | None = None,
    ) -> _Breach:
        key = (partner_id, sku, cause)
        if key not in self:
            self[key] = _Breach(partner_id, sku, cause, channel, None, policy_id, at, at)
        return self[key]


async def _unknown_sellers(session: AsyncSession, limit: int) -> None:
    """A seller never seen before becomes an unauthorised partner, so every listing has a party."""
    rows = await session.execute(
        text(
            """
            SELECT DISTINCT ON (o.channel, o.seller_id) o.channel, o.seller_id, o.seller_name
              FROM (SELECT * FROM listing_observations WHERE checked_at IS NULL ORDER BY id LIMIT :limit) o
             WHERE NOT EXISTS (SELECT 1 FROM channel_partners p WHERE p.channel = o.channel AND p.seller_id = o.seller_id)
            """
        ),
        {"limit": limit},
    )
    values = [
        {
            "tenant_id": current_tenant(session), "id": uuid7(), "name": r.seller_name or r.seller_id,
            "level": PartnerLevel.MARKETPLACE_SELLER.value, "channel": r.channel, "seller_id": r.seller_id,
            "authorised": False, "territories": [], "contacts": [], "violation_level": 0,
        }
        for r in rows
    ]  # fmt: skip
    if values:
        await session.execute(pg_insert(Partner).values(values).on_conflict_do_nothing())


async def detect(session: AsyncSession, *, now: datetime | None = None, limit: int = 5000) -> Detection:
    """One run of detection: judge a batch of unchecked listings against the price policies in
    force when each was seen (converted at that day's rates, promotions allowed for) and the
    orders changed since the last run against their sellers' territories; open or join conflicts
    for the breaches; resolve price conflicts back within policy for the tenant's set time. The
    judgements are SQL statements over the batch."""
    now = now or datetime.now(UTC)
    settings = await settings_of(session)
    found = _Found()
    result = Detection()
    result.checked = await _judge_listings(session, settings.reporting_currency, limit, now, found)
    result.checked += await _judge_orders(session, limit, found)
    if found:
        await _open_or_join(session, list(found.values()), now, result)
    if result.checked < limit:  # once the backlog is judged, not after every batch of it
        await _resolve_back_within(session, now, settings.conflict_auto_resolve_hours, result)
    return result


async def _judge_listings(
    session: AsyncSession, reporting: str, limit: int, now: datetime, found: _Found
) -> int:
    await _unknown_sellers(session, limit)
    judged = (await session.execute(_JUDGE, {"limit": limit, "reporting": reporting})).all()
    verdicts: dict[bool | None, list[uuid.UUID]] = {True: [], False: [], None: []}
    for row in judged:
        judgeable = row.policy_id is not None and row.converted is not None
        within = bool(row.converted >= row.floor or row.excepted) if judgeable else None
        verdicts[within].append(row.id)
        causes = ([Cause.BELOW_MAP] if within is False else []) + (
            [] if row.authorised else [Cause.UNAUTHORISED_SELLER]
        )
        for cause in causes:
            breach = found.breach(row.partner_id, row.sku, cause, row.channel, row.observed_at, row.policy_id)
            if cause == Cause.BELOW_MAP:
                breach.gap = max(breach.gap, Decimal(1) - Decimal(row.converted) / Decimal(row.floor))
            breach.add(
                row.observed_at, row.region, observation_id=row.id, price=row.price, currency=row.currency,
                policy_price=row.min_price, policy_currency=row.policy_currency, url=row.url, listing_id=row.listing_id,
            )  # fmt: skip
    for within, ids in verdicts.items():
        if ids:
            await session.execute(_MARK, {"now": now, "within": within, "ids": ids})
    return len(judged)


_ORDERS_SINCE = text(
    """
    SELECT o.id, o.external_id, o.channel, o.ship_region, o.placed_at, o.updated_at, p.id AS partner_id,
           p.territories <> '{}' AND NOT (o.ship_region = ANY(p.territories)
                                          OR split_part(o.ship_region, '-', 1) = ANY(p.territories)) AS outside
      FROM orders o
      LEFT JOIN channel_partners p ON p.channel = o.channel AND p.seller_id = o.seller_id
     WHERE o.ship_region IS NOT NULL AND o.seller_id IS NOT NULL
       AND o.updated_at > coalesce((SELECT orders_until FROM conflict_watermarks), '-infinity') - CAST(:overlap AS interval)
     ORDER BY o.updated_at LIMIT :limit
    """
)
ORDERS_OVERLAP = timedelta(minutes=5)
"""Orders committed late with an earlier update time are read again (their evidence is stored once)."""


async def _judge_orders(session: AsyncSession, limit: int, found: _Found) -> int:
    """Orders shipped outside the territories of the partner that sold them."""
    rows = (await session.execute(_ORDERS_SINCE, {"limit": limit, "overlap": ORDERS_OVERLAP})).all()
    if not rows:
        return 0
    for row in rows:
        if row.outside:
            breach = found.breach(row.partner_id, None, Cause.OUT_OF_TERRITORY, row.channel, row.placed_at)
            breach.add(
                row.placed_at,
                row.ship_region,
                order_id=row.id,
                notes=f"Order {row.external_id} shipped to {row.ship_region}",
            )
    until = max(r.updated_at for r in rows)
    await session.execute(
        pg_insert(Watermark)
        .values(tenant_id=current_tenant(session), orders_until=until)
        .on_conflict_do_update(
            index_elements=[Watermark.tenant_id],
            set_={"orders_until": func.greatest(Watermark.orders_until, until)},
        )
    )
    return len(rows)


TYPES = {Cause.UNAUTHORISED_SELLER: ConflictType.MULTI_CHANNEL}
"""How detection types what it finds; horizontal (between sellers of one level) otherwise."""


async def _open_or_join(
    session: AsyncSession, breaches: list[_Breach], now: datetime, result: Detection
) -> None:
    tenant_id = current_tenant(session)
    values = [
        {
            "tenant_id": tenant_id, "id": uuid7(), "partner_id": b.partner_id, "sku": b.sku, "cause": b.cause.value,
            "type": TYPES.get(b.cause, ConflictType.HORIZONTAL).value, "channel": b.channel, "region": b.region,
            "policy_id": b.policy_id, "breaches": len(b.evidence), "worst_gap": round(b.gap, 4),
            "status": ConflictStatus.OPEN.value, "opened_at": b.first_at, "last_breach_at": b.last_at, "updated_at": now,
        }
        for b in breaches
    ]  # fmt: skip
    # executemany forms: compiled once and cached, sent in batches (insertmanyvalues).
    insert = pg_insert(Conflict)
    upsert = insert.on_conflict_do_update(
        index_elements=[Conflict.tenant_id, Conflict.partner_id, Conflict.sku, Conflict.cause],
        index_where=text("status NOT IN ('resolved', 'dismissed')"),
        set_={
            "breaches": Conflict.breaches + insert.excluded.breaches,
            "worst_gap": func.greatest(Conflict.worst_gap, insert.excluded.worst_gap),
            "last_breach_at": func.greatest(Conflict.last_breach_at, insert.excluded.last_breach_at),
            "region": func.coalesce(insert.excluded.region, Conflict.region),
            "updated_at": now,
        },
    ).returning(
        Conflict.id,
        Conflict.partner_id,
        Conflict.sku,
        Conflict.cause,
        literal_column("xmax = 0").label("new"),
    )
    stored = {(r.partner_id, r.sku, Cause(r.cause)): r for r in await session.execute(upsert, values)}
    evidence, events = [], []
    for b in breaches:
        conflict = stored[(b.partner_id, b.sku, b.cause)]
        if conflict.new:
            result.opened += 1
        else:
            result.joined += 1
        events.append(
            {
                "tenant_id": tenant_id, "id": uuid7(), "conflict_id": conflict.id, "at": now, "actor": SYSTEM,
                "kind": "opened" if conflict.new else "evidence",
                "to_status": ConflictStatus.OPEN.value if conflict.new else None,
                "note": f"{len(b.evidence)} {_cause_note(b.cause)}",
            }
        )  # fmt: skip
        evidence += [
            {"tenant_id": tenant_id, "id": uuid7(), "conflict_id": conflict.id, **e} for e in b.evidence
        ]
    await session.execute(pg_insert(Evidence).on_conflict_do_nothing(), evidence)
    await session.execute(pg_insert(Event), events)


def _cause_note(cause: Cause) -> str:
    return {
        Cause.BELOW_MAP: "listing(s) seen below the minimum advertised price",
        Cause.UNAUTHORISED_SELLER: "listing(s) seen from a seller not authorised",
        Cause.OUT_OF_TERRITORY: "order(s) shipped outside the seller's territories",
    }[cause]


async def _resolve_back_within(session: AsyncSession, now: datetime, hours: int, result: Detection) -> None:
    before = {r.id: r.status for r in await session.execute(_BACK_WITHIN, {"now": now, "hours": hours})}
    if not before:
        return
    ids = list(before)
    note = f"Resolved by itself: listings back within policy, no breach for {hours} hours."
    await session.execute(
        update(Conflict)
        .where(Conflict.id.in_(ids))
        .values(status=ConflictStatus.RESOLVED.value, resolution=note, closed_at=now, updated_at=now)
    )
    tenant_id = current_tenant(session)
    await session.execute(
        pg_insert(Event),
        [
            {"tenant_id": tenant_id, "id": uuid7(), "conflict_id": i, "at": now, "actor": SYSTEM, "kind": "status",
             "from_status": before[i], "to_status": ConflictStatus.RESOLVED.value, "note": note}
            for i in ids
        ],
    )  # fmt: skip
    result.resolved += len(ids)
