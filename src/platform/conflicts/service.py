"""Channel conflicts: partners and policies, listing observations, detection, and the
conflict workflow (docs/conflicts.md)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import Select, and_, func, literal_column, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
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
    PriceException,
    PricePolicy,
    Strategy,
)
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.orders.service import CHANNEL, MAX_SKU
from brandloop.tenancy.service import is_currency, settings_of

REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
"""ISO 3166-2 (CN-GD, US-CA) or a whole country (ISO 3166-1 alpha-2)."""
MAX_OBSERVATIONS = 500
MAX_NOTE = 4000
SYSTEM = "system:detection"


def _check(ok: bool, problems: list[Problem], field_name: str, code: str, message: str) -> None:
    if not ok:
        problems.append(Problem(field_name, code, message))


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInput(*problems)


def _regions(values: Sequence[str], field_name: str, problems: list[Problem]) -> list[str]:
    regions = sorted({v.strip().upper() for v in values})
    bad = [r for r in regions if not REGION.match(r)]
    _check(
        not bad, problems, field_name, "INVALID_REGION", f"Use ISO 3166-2 codes such as CN-GD: not {bad[:3]}."
    )
    _check(len(regions) <= 200, problems, field_name, "TOO_MANY", "At most 200 regions.")
    return regions


# -- partners --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartnerInput:
    name: str
    level: str
    channel: str
    authorised: bool
    seller_id: str | None = None
    territories: Sequence[str] = ()
    contacts: Sequence[dict[str, Any]] = ()


def _partner_problems(given: PartnerInput) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    _check(
        0 < len(given.name.strip()) <= 200,
        problems,
        "name",
        "INVALID_LENGTH",
        "A name has 1 to 200 characters.",
    )
    _check(
        given.level in set(PartnerLevel),
        problems,
        "level",
        "INVALID_LEVEL",
        f"One of {', '.join(PartnerLevel)}.",
    )
    _check(
        bool(CHANNEL.match(given.channel)),
        problems,
        "channel",
        "INVALID_CHANNEL",
        "A channel key: a-z, 0-9, _.",
    )
    _check(
        given.seller_id is None or 0 < len(given.seller_id) <= 128,
        problems, "sellerId", "INVALID_LENGTH", "A seller id has 1 to 128 characters.",
    )  # fmt: skip
    _check(len(given.contacts) <= 20, problems, "contacts", "TOO_MANY", "At most 20 contacts.")
    for n, contact in enumerate(given.contacts):
        fine = isinstance(contact, dict) and all(
            k in {"name", "email", "phone", "role"} and isinstance(v, str) and len(v) <= 200
            for k, v in contact.items()
        )
        _check(
            fine,
            problems,
            f"contacts.{n}",
            "INVALID_CONTACT",
            "A contact has name, email, phone, role (text).",
        )
    return problems, _regions(given.territories, "territories", problems)


async def create_partner(session: AsyncSession, given: PartnerInput, *, actor: str) -> Partner:
    problems, territories = _partner_problems(given)
    _raise(problems)
    partner = Partner(
        tenant_id=current_tenant(session), id=uuid7(), name=given.name.strip(), level=given.level,
        channel=given.channel, seller_id=given.seller_id, authorised=given.authorised,
        territories=territories, contacts=list(given.contacts), violation_level=0,
    )  # fmt: skip
    session.add(partner)
    try:
        async with session.begin_nested():
            await session.flush()
    except Exception as error:  # the unique (channel, seller id)
        if "uq_channel_partners_channel_seller" not in str(error):
            raise
        raise InvalidInput(
            Problem("sellerId", "DUPLICATE", "Another partner is this seller on this channel.")
        ) from None
    await audit.record(
        session, actor=actor, action="partner.create", target_type="ChannelPartner", target_id=partner.id
    )
    return partner


async def update_partner(
    session: AsyncSession, partner_id: uuid.UUID, given: PartnerInput, *, actor: str
) -> Partner:
    partner = await get_partner(session, partner_id, lock=True)
    problems, territories = _partner_problems(given)
    _raise(problems)
    partner.name, partner.level, partner.channel = given.name.strip(), given.level, given.channel
    partner.seller_id, partner.authorised = given.seller_id, given.authorised
    partner.territories, partner.contacts = territories, list(given.contacts)
    partner.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="partner.update", target_type="ChannelPartner", target_id=partner.id
    )
    return partner


async def get_partner(session: AsyncSession, partner_id: uuid.UUID, *, lock: bool = False) -> Partner:
    found = await session.get(Partner, (current_tenant(session), partner_id), with_for_update=lock)
    if found is None:
        raise InvalidInput(Problem("id", "NOT_FOUND", "No channel partner of yours has this id."))
    return found


async def partners_page(session: AsyncSession, first: int, after: uuid.UUID | None) -> Sequence[Partner]:
    return list(await session.scalars(keyset_page(select(Partner), Partner, first, after)))


async def partners_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Partner]:
    return {p.id: p for p in await session.scalars(select(Partner).where(Partner.id.in_(ids)))}


async def partners_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Partner)) or 0)


# -- price policies --------------------------------------------------------------------------------


async def create_policy(
    session: AsyncSession,
    *,
    sku: str,
    channel: str | None,
    currency: str,
    min_price: int,
    valid_from: datetime,
    valid_until: datetime | None,
    actor: str,
) -> PricePolicy:
    problems: list[Problem] = []
    sku, currency = sku.strip(), currency.strip().upper()
    _check(
        0 < len(sku) <= MAX_SKU, problems, "sku", "INVALID_LENGTH", f"A SKU has 1 to {MAX_SKU} characters."
    )
    _check(
        channel is None or bool(CHANNEL.match(channel)),
        problems,
        "channel",
        "INVALID_CHANNEL",
        "A channel key.",
    )
    _check(is_currency(currency), problems, "currency", "INVALID_CURRENCY", "An ISO 4217 code such as CNY.")
    _check(
        0 < min_price <= 10**12, problems, "minPrice", "INVALID_AMOUNT", "A price in minor units, above 0."
    )
    _check(
        valid_until is None or valid_until > valid_from,
        problems, "validUntil", "INVALID_PERIOD", "A policy ends after it starts.",
    )  # fmt: skip
    _raise(problems)
    policy = PricePolicy(
        tenant_id=current_tenant(session), id=uuid7(), sku=sku, channel=channel, currency=currency,
        digits=get_currency_precision(currency), min_price=min_price, valid_from=valid_from, valid_until=valid_until,
    )  # fmt: skip
    session.add(policy)
    await session.flush()
    await audit.record(
        session, actor=actor, action="price_policy.create", target_type="PricePolicy", target_id=policy.id
    )
    return policy


async def create_exception(
    session: AsyncSession,
    policy_id: uuid.UUID,
    *,
    min_price: int,
    starts_at: datetime,
    ends_at: datetime,
    partner_ids: Sequence[uuid.UUID],
    channels: Sequence[str],
    reason: str,
    actor: str,
) -> PriceException:
    """A promotional window in which a lower price is allowed for named partners or channels;
    refused when it overlaps another of the same policy for any of them."""
    policy = await session.get(PricePolicy, (current_tenant(session), policy_id), with_for_update=True)
    if policy is None:
        raise InvalidInput(Problem("policyId", "NOT_FOUND", "No price policy of yours has this id."))
    problems: list[Problem] = []
    _check(
        0 < min_price < policy.min_price,
        problems,
        "minPrice",
        "INVALID_AMOUNT",
        "Below the policy's price, above 0.",
    )
    _check(ends_at > starts_at, problems, "endsAt", "INVALID_PERIOD", "A promotion ends after it starts.")
    _check(
        bool(partner_ids or channels),
        problems,
        "partnerIds",
        "REQUIRED",
        "Name the partners or channels it allows.",
    )
    _check(
        0 < len(reason.strip()) <= 500,
        problems,
        "reason",
        "INVALID_LENGTH",
        "Say why, in 1 to 500 characters.",
    )
    _check(all(CHANNEL.match(c) for c in channels), problems, "channels", "INVALID_CHANNEL", "Channel keys.")
    known = set(await session.scalars(select(Partner.id).where(Partner.id.in_(list(partner_ids)))))
    _check(set(partner_ids) <= known, problems, "partnerIds", "NOT_FOUND", "Some partners are not yours.")
    _raise(problems)
    overlapping = await session.scalar(
        select(PriceException.id).where(
            PriceException.policy_id == policy_id,
            PriceException.starts_at < ends_at,
            PriceException.ends_at > starts_at,
            or_(
                PriceException.partner_ids.overlap(list(partner_ids)),
                PriceException.channels.overlap(list(channels)),
            ),
        )
    )
    if overlapping is not None:
        raise InvalidInput(
            Problem(
                "startsAt",
                "OVERLAPPING_EXCEPTION",
                "Another promotion of this policy covers some of them then.",
            )
        )
    exception = PriceException(
        tenant_id=policy.tenant_id, id=uuid7(), policy_id=policy_id, min_price=min_price, starts_at=starts_at,
        ends_at=ends_at, partner_ids=sorted(set(partner_ids)), channels=sorted(set(channels)), reason=reason.strip(),
    )  # fmt: skip
    session.add(exception)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="price_exception.create",
        target_type="PriceException",
        target_id=exception.id,
    )
    return exception


async def policies_page(
    session: AsyncSession, first: int, after: uuid.UUID | None, sku: str | None
) -> Sequence[PricePolicy]:
    query = select(PricePolicy) if sku is None else select(PricePolicy).where(PricePolicy.sku == sku)
    return list(await session.scalars(keyset_page(query, PricePolicy, first, after)))


async def policies_count(session: AsyncSession, sku: str | None) -> int:
    query = select(func.count()).select_from(PricePolicy)
    return int(await session.scalar(query if sku is None else query.where(PricePolicy.sku == sku)) or 0)


async def exceptions_of(
    session: AsyncSession, policy_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PriceException]]:
    found: dict[uuid.UUID, list[PriceException]] = {i: [] for i in policy_ids}
    rows = await session.scalars(
        select(PriceException)
        .where(PriceException.policy_id.in_(policy_ids))
        .order_by(PriceException.starts_at)
    )
    for row in rows:
        found[row.policy_id].append(row)
    return found


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


async def record_observations(session: AsyncSession, given: Sequence[ObservationInput]) -> int:
    """Store listings as seen (from connectors or a partner's integration); detection judges them."""
    problems: list[Problem] = []
    _check(
        0 < len(given) <= MAX_OBSERVATIONS, problems, "observations", "INVALID_COUNT",
        f"Send 1 to {MAX_OBSERVATIONS} observations at a time.",
    )  # fmt: skip
    rows = []
    for n, o in enumerate(given[:MAX_OBSERVATIONS]):
        where, currency = f"observations.{n}", o.currency.strip().upper()
        _check(
            bool(CHANNEL.match(o.channel)), problems, f"{where}.channel", "INVALID_CHANNEL", "A channel key."
        )
        _check(
            0 < len(o.sku.strip()) <= MAX_SKU, problems, f"{where}.sku", "INVALID_LENGTH", "A SKU of 1 to 64."
        )
        _check(
            0 < len(o.seller_id) <= 128,
            problems,
            f"{where}.sellerId",
            "INVALID_LENGTH",
            "A seller id of 1 to 128.",
        )
        _check(
            0 <= o.price <= 10**12, problems, f"{where}.price", "INVALID_AMOUNT", "A price in minor units."
        )
        _check(is_currency(currency), problems, f"{where}.currency", "INVALID_CURRENCY", "An ISO 4217 code.")
        _check(
            o.observed_at.tzinfo is not None,
            problems,
            f"{where}.observedAt",
            "MISSING_TIMEZONE",
            "Give the offset.",
        )
        _check(
            o.region is None or bool(REGION.match(o.region)),
            problems,
            f"{where}.region",
            "INVALID_REGION",
            "ISO 3166-2.",
        )
        _check(
            o.url is None or len(o.url) <= 2000, problems, f"{where}.url", "INVALID_LENGTH", "At most 2,000."
        )
        if not problems:
            rows.append(
                {
                    "tenant_id": current_tenant(session), "id": uuid7(), "channel": o.channel, "sku": o.sku.strip(),
                    "seller_id": o.seller_id, "seller_name": (o.seller_name or "")[:200] or None, "price": o.price,
                    "currency": currency, "digits": get_currency_precision(currency), "region": o.region,
                    "url": o.url, "listing_id": (o.listing_id or "")[:128] or None, "observed_at": o.observed_at,
                }
            )  # fmt: skip
    _raise(problems)
    await session.execute(pg_insert(Observation), rows)
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
             b.price::numeric / 10 ^ b.digits * CASE
               WHEN b.currency = pol.currency THEN 1
               ELSE coalesce(rx.rate, CASE WHEN b.currency = :reporting THEN 1 END)
                  / coalesce(rp.rate, CASE WHEN pol.currency = :reporting THEN 1 END)
             END AS converted
        FROM batch b
        JOIN channel_partners p ON p.channel = b.channel AND p.seller_id = b.seller_id
        LEFT JOIN LATERAL (
          SELECT * FROM price_policies pol
           WHERE pol.sku = b.sku AND (pol.channel IS NULL OR pol.channel = b.channel)
             AND pol.valid_from <= b.observed_at AND (pol.valid_until IS NULL OR pol.valid_until > b.observed_at)
           ORDER BY pol.channel IS NULL, pol.valid_from DESC LIMIT 1) pol ON true
        LEFT JOIN LATERAL (
          SELECT rate FROM exchange_rates r WHERE r.currency = b.currency AND r.day <= b.observed_at::date
           ORDER BY r.day DESC LIMIT 1) rx ON true
        LEFT JOIN LATERAL (
          SELECT rate FROM exchange_rates r WHERE r.currency = pol.currency AND r.day <= b.observed_at::date
           ORDER BY r.day DESC LIMIT 1) rp ON true
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
    conflict_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(slots=True)
class _Breach:
    partner_id: uuid.UUID
    sku: str
    cause: Cause
    channel: str
    region: str | None
    policy_id: uuid.UUID | None
    first_at: datetime
    last_at: datetime
    gap: Decimal = Decimal(0)
    rows: list[Any] = field(default_factory=list)


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
    """Judge a batch of unchecked observations against the policies in force when each was seen
    (converted at that day's rates, promotions allowed for), open or join conflicts for the
    breaches, and resolve price conflicts whose listings have been back within policy for the
    tenant's set time. The judgement is one SQL statement over the batch."""
    now = now or datetime.now(UTC)
    settings = await settings_of(session)
    await _unknown_sellers(session, limit)
    judged = (await session.execute(_JUDGE, {"limit": limit, "reporting": settings.reporting_currency})).all()
    result = Detection(checked=len(judged))
    verdicts: dict[bool | None, list[uuid.UUID]] = {True: [], False: [], None: []}
    breaches: dict[tuple[uuid.UUID, str, Cause], _Breach] = {}
    for row in judged:
        within = (
            None
            if row.policy_id is None or row.converted is None
            else bool(row.converted >= row.floor or row.excepted)
        )
        verdicts[within].append(row.id)
        causes = ([Cause.BELOW_MAP] if within is False else []) + (
            [] if row.authorised else [Cause.UNAUTHORISED_SELLER]
        )
        for cause in causes:
            key = (row.partner_id, row.sku, cause)
            breach = breaches.get(key) or breaches.setdefault(
                key,
                _Breach(
                    row.partner_id,
                    row.sku,
                    cause,
                    row.channel,
                    row.region,
                    row.policy_id,
                    row.observed_at,
                    row.observed_at,
                ),
            )
            breach.first_at, breach.last_at = (
                min(breach.first_at, row.observed_at),
                max(breach.last_at, row.observed_at),
            )
            if cause == Cause.BELOW_MAP:
                breach.gap = max(breach.gap, Decimal(1) - Decimal(row.converted) / Decimal(row.floor))
            breach.region = row.region or breach.region
            breach.rows.append(row)
    for within, ids in verdicts.items():
        if ids:
            await session.execute(_MARK, {"now": now, "within": within, "ids": ids})
    if breaches:
        await _open_or_join(session, list(breaches.values()), now, result)
    await _resolve_back_within(session, now, settings.conflict_auto_resolve_hours, result)
    return result


async def _open_or_join(
    session: AsyncSession, breaches: list[_Breach], now: datetime, result: Detection
) -> None:
    tenant_id = current_tenant(session)
    values = [
        {
            "tenant_id": tenant_id, "id": uuid7(), "partner_id": b.partner_id, "sku": b.sku, "cause": b.cause.value,
            "type": (ConflictType.MULTI_CHANNEL if b.cause == Cause.UNAUTHORISED_SELLER else ConflictType.HORIZONTAL).value,
            "channel": b.channel, "region": b.region, "policy_id": b.policy_id, "breaches": len(b.rows),
            "worst_gap": round(b.gap, 4), "status": ConflictStatus.OPEN.value, "opened_at": b.first_at,
            "last_breach_at": b.last_at, "updated_at": now,
        }
        for b in breaches
    ]  # fmt: skip
    insert = pg_insert(Conflict).values(values)
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
    stored = {(r.partner_id, r.sku, Cause(r.cause)): r for r in await session.execute(upsert)}
    evidence, events = [], []
    for b in breaches:
        conflict = stored[(b.partner_id, b.sku, b.cause)]
        result.conflict_ids.append(conflict.id)
        if conflict.new:
            result.opened += 1
        else:
            result.joined += 1
        events.append(
            {
                "tenant_id": tenant_id, "id": uuid7(), "conflict_id": conflict.id, "at": now, "actor": SYSTEM,
                "kind": "opened" if conflict.new else "evidence", "to_status": ConflictStatus.OPEN.value if conflict.new else None,
                "note": f"{len(b.rows)} listing(s) seen {_cause_note(b.cause)}",
            }
        )  # fmt: skip
        evidence += [
            {
                "tenant_id": tenant_id, "id": uuid7(), "conflict_id": conflict.id, "observation_id": r.id, "price": r.price,
                "currency": r.currency, "policy_price": r.min_price, "policy_currency": r.policy_currency, "url": r.url,
                "listing_id": r.listing_id, "region": r.region, "observed_at": r.observed_at,
            }
            for r in b.rows
        ]  # fmt: skip
    await session.execute(pg_insert(Evidence).values(evidence).on_conflict_do_nothing())
    await session.execute(pg_insert(Event), events)


def _cause_note(cause: Cause) -> str:
    return (
        "below the minimum advertised price" if cause == Cause.BELOW_MAP else "from a seller not authorised"
    )


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


# -- the workflow ----------------------------------------------------------------------------------

MOVES: dict[ConflictStatus, frozenset[ConflictStatus]] = {
    ConflictStatus.OPEN: frozenset(
        {
            ConflictStatus.INVESTIGATING,
            ConflictStatus.NOTICE_SENT,
            ConflictStatus.ESCALATED,
            ConflictStatus.RESOLVED,
            ConflictStatus.DISMISSED,
        }
    ),
    ConflictStatus.INVESTIGATING: frozenset(
        {
            ConflictStatus.NOTICE_SENT,
            ConflictStatus.ESCALATED,
            ConflictStatus.RESOLVED,
            ConflictStatus.DISMISSED,
        }
    ),
    ConflictStatus.NOTICE_SENT: frozenset(
        {
            ConflictStatus.INVESTIGATING,
            ConflictStatus.ESCALATED,
            ConflictStatus.RESOLVED,
            ConflictStatus.DISMISSED,
        }
    ),
    ConflictStatus.ESCALATED: frozenset({ConflictStatus.RESOLVED, ConflictStatus.DISMISSED}),
    ConflictStatus.RESOLVED: frozenset({ConflictStatus.OPEN}),
    ConflictStatus.DISMISSED: frozenset({ConflictStatus.OPEN}),
}
"""Where a conflict may go from each status; a closed one may only be reopened."""
CLOSED = {ConflictStatus.RESOLVED, ConflictStatus.DISMISSED}


async def _saved(session: AsyncSession, conflict: Conflict) -> Conflict:
    """Flushed and read back: `severity` is computed by the database."""
    await session.flush()
    await session.refresh(conflict)
    return conflict


async def get_conflict(session: AsyncSession, conflict_id: uuid.UUID, *, lock: bool = False) -> Conflict:
    found = await session.get(Conflict, (current_tenant(session), conflict_id), with_for_update=lock)
    if found is None:
        raise InvalidInput(Problem("id", "NOT_FOUND", "No conflict of yours has this id."))
    return found


def _event(
    conflict: Conflict, actor: str, kind: str, note: str | None = None, **statuses: str | None
) -> Event:
    return Event(
        tenant_id=conflict.tenant_id, id=uuid7(), conflict_id=conflict.id, at=datetime.now(UTC), actor=actor,
        kind=kind, note=note, **statuses,
    )  # fmt: skip


async def transition(
    session: AsyncSession,
    conflict_id: uuid.UUID,
    to: ConflictStatus,
    *,
    actor: str,
    note: str | None = None,
    strategy: Strategy | None = None,
    resolution: str | None = None,
) -> Conflict:
    """Move a conflict along its workflow; an illegal move, a resolution without its strategy and
    what was done, or a dismissal without a reason is refused."""
    conflict = await get_conflict(session, conflict_id, lock=True)
    current = ConflictStatus(conflict.status)
    problems: list[Problem] = []
    _check(
        to in MOVES[current], problems, "status", "ILLEGAL_TRANSITION",
        f"A conflict that is {current} can go to {', '.join(sorted(MOVES[current])) or 'nothing'}, not {to}.",
    )  # fmt: skip
    if to == ConflictStatus.RESOLVED:
        _check(
            strategy is not None,
            problems,
            "resolutionStrategy",
            "REQUIRED",
            "Say which strategy resolved it.",
        )
        _check(
            bool(resolution and resolution.strip()), problems, "resolution", "REQUIRED", "Say what was done."
        )
    if to == ConflictStatus.DISMISSED:
        _check(bool(note and note.strip()), problems, "note", "REQUIRED", "Say why it is dismissed.")
    _check(
        note is None or len(note) <= MAX_NOTE,
        problems,
        "note",
        "INVALID_LENGTH",
        f"At most {MAX_NOTE} characters.",
    )
    _check(
        resolution is None or len(resolution) <= 2000,
        problems,
        "resolution",
        "INVALID_LENGTH",
        "At most 2,000 characters.",
    )
    _raise(problems)
    now = datetime.now(UTC)
    conflict.status = to.value
    if to == ConflictStatus.RESOLVED:
        conflict.resolution_strategy = strategy.value if strategy else None
        conflict.resolution = (resolution or "").strip()
    conflict.closed_at = now if to in CLOSED else None
    conflict.updated_at = now
    session.add(_event(conflict, actor, "status", note, from_status=current.value, to_status=to.value))
    return await _saved(session, conflict)


async def add_note(session: AsyncSession, conflict_id: uuid.UUID, note: str, *, actor: str) -> Conflict:
    if not 0 < len(note.strip()) <= MAX_NOTE:
        raise InvalidInput(Problem("note", "INVALID_LENGTH", f"A note has 1 to {MAX_NOTE} characters."))
    conflict = await get_conflict(session, conflict_id)
    session.add(_event(conflict, actor, "note", note.strip()))
    return await _saved(session, conflict)


async def assign(session: AsyncSession, conflict_id: uuid.UUID, owner: str | None, *, actor: str) -> Conflict:
    if owner is not None and not 0 < len(owner.strip()) <= 200:
        raise InvalidInput(Problem("owner", "INVALID_LENGTH", "An owner has 1 to 200 characters."))
    conflict = await get_conflict(session, conflict_id, lock=True)
    conflict.owner = owner.strip() if owner else None
    conflict.updated_at = datetime.now(UTC)
    session.add(_event(conflict, actor, "assigned", conflict.owner or "unassigned"))
    return await _saved(session, conflict)


@dataclass(frozen=True, slots=True)
class ConflictFilter:
    statuses: Sequence[str] = ()
    types: Sequence[str] = ()
    causes: Sequence[str] = ()
    partner_id: uuid.UUID | None = None
    channel: str | None = None
    sku: str | None = None
    severities: Sequence[str] = ()
    opened_from: datetime | None = None
    opened_until: datetime | None = None


def _filtered(query: Select[Any], given: ConflictFilter) -> Select[Any]:
    conditions = [
        Conflict.status.in_(given.statuses) if given.statuses else None,
        Conflict.type.in_(given.types) if given.types else None,
        Conflict.cause.in_(given.causes) if given.causes else None,
        Conflict.partner_id == given.partner_id if given.partner_id else None,
        Conflict.channel == given.channel if given.channel else None,
        Conflict.sku == given.sku if given.sku else None,
        Conflict.severity.in_(given.severities) if given.severities else None,
        Conflict.opened_at >= given.opened_from if given.opened_from else None,
        Conflict.opened_at < given.opened_until if given.opened_until else None,
    ]
    return query.where(and_(True, *[c for c in conditions if c is not None]))


async def conflicts_page(
    session: AsyncSession, given: ConflictFilter, first: int, after: uuid.UUID | None
) -> Sequence[Conflict]:
    return list(
        await session.scalars(keyset_page(_filtered(select(Conflict), given), Conflict, first, after))
    )


async def conflicts_count(session: AsyncSession, given: ConflictFilter) -> int:
    return int(await session.scalar(_filtered(select(func.count()).select_from(Conflict), given)) or 0)


async def timeline_of(
    session: AsyncSession, conflict_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Event]]:
    found: dict[uuid.UUID, list[Event]] = {i: [] for i in conflict_ids}
    for row in await session.scalars(
        select(Event).where(Event.conflict_id.in_(conflict_ids)).order_by(Event.id)
    ):
        found[row.conflict_id].append(row)
    return found


async def evidence_of(
    session: AsyncSession, conflict_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Evidence]]:
    found: dict[uuid.UUID, list[Evidence]] = {i: [] for i in conflict_ids}
    rows = await session.scalars(
        select(Evidence)
        .where(Evidence.conflict_id.in_(conflict_ids))
        .order_by(Evidence.observed_at, Evidence.id)
    )
    for row in rows:
        found[row.conflict_id].append(row)
    return found
