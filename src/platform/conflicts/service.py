"""Channel conflicts: partners and policies, the conflict workflow and the summary
(docs/conflicts.md); listings and their detection are in detection.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.conflicts.models import (
    Cause,
    Conflict,
    ConflictStatus,
    ConflictType,
    Event,
    Evidence,
    Partner,
    PartnerLevel,
    PriceException,
    PricePolicy,
    Severity,
    Strategy,
)
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant, get_own
from brandloop.errors import InvalidInput, Problem
from brandloop.orders.service import CHANNEL, MAX_SKU, REGION
from brandloop.tenancy.service import is_currency, settings_of

MAX_NOTE = 4000


def check(ok: bool, problems: list[Problem], field_name: str, code: str, message: str) -> None:
    if not ok:
        problems.append(Problem(field_name, code, message))


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInput(*problems)


def _regions(values: Sequence[str], field_name: str, problems: list[Problem]) -> list[str]:
    regions = sorted({v.strip().upper() for v in values})
    bad = [r for r in regions if not REGION.match(r)]
    check(
        not bad, problems, field_name, "INVALID_REGION", f"Use ISO 3166-2 codes such as CN-GD: not {bad[:3]}."
    )
    check(len(regions) <= 200, problems, field_name, "TOO_MANY", "At most 200 regions.")
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
    check(
        0 < len(given.name.strip()) <= 200,
        problems,
        "name",
        "INVALID_LENGTH",
        "A name has 1 to 200 characters.",
    )
    check(
        given.level in set(PartnerLevel),
        problems,
        "level",
        "INVALID_LEVEL",
        f"One of {', '.join(PartnerLevel)}.",
    )
    check(
        bool(CHANNEL.match(given.channel)),
        problems,
        "channel",
        "INVALID_CHANNEL",
        "A channel key: a-z, 0-9, _.",
    )
    check(
        given.seller_id is None or 0 < len(given.seller_id) <= 128,
        problems, "sellerId", "INVALID_LENGTH", "A seller id has 1 to 128 characters.",
    )  # fmt: skip
    check(len(given.contacts) <= 20, problems, "contacts", "TOO_MANY", "At most 20 contacts.")
    for n, contact in enumerate(given.contacts):
        fine = isinstance(contact, dict) and all(
            k in {"name", "email", "phone", "role"} and isinstance(v, str) and len(v) <= 200
            for k, v in contact.items()
        )
        check(
            fine,
            problems,
            f"contacts.{n}",
            "INVALID_CONTACT",
            "A contact has name, email, phone, role (text).",
        )
    return problems, _regions(given.territories, "territories", problems)


async def create_partner(session: AsyncSession, given: PartnerInput, *, actor: str) -> Partner:
    problems, territories = _partner_problems(given)
    raise_problems(problems)
    partner = Partner(
        tenant_id=current_tenant(session), id=uuid7(), name=given.name.strip(), level=given.level,
        channel=given.channel, seller_id=given.seller_id, authorised=given.authorised,
        territories=territories, contacts=list(given.contacts), violation_level=0,
    )  # fmt: skip
    session.add(partner)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # the unique (channel, seller id)
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
    raise_problems(problems)
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
    return await get_own(session, Partner, partner_id, what="channel partner", lock=lock)


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
    check(0 < len(sku) <= MAX_SKU, problems, "sku", "INVALID_LENGTH", f"A SKU has 1 to {MAX_SKU} characters.")
    check(
        channel is None or bool(CHANNEL.match(channel)),
        problems,
        "channel",
        "INVALID_CHANNEL",
        "A channel key.",
    )
    check(is_currency(currency), problems, "currency", "INVALID_CURRENCY", "An ISO 4217 code such as CNY.")
    check(0 < min_price <= 10**12, problems, "minPrice", "INVALID_AMOUNT", "A price in minor units, above 0.")
    check(
        valid_until is None or valid_until > valid_from,
        problems, "validUntil", "INVALID_PERIOD", "A policy ends after it starts.",
    )  # fmt: skip
    raise_problems(problems)
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
    policy = await get_own(session, PricePolicy, policy_id, what="price policy", field="policyId", lock=True)
    problems: list[Problem] = []
    check(
        0 < min_price < policy.min_price,
        problems,
        "minPrice",
        "INVALID_AMOUNT",
        "Below the policy's price, above 0.",
    )
    check(ends_at > starts_at, problems, "endsAt", "INVALID_PERIOD", "A promotion ends after it starts.")
    check(
        bool(partner_ids or channels),
        problems,
        "partnerIds",
        "REQUIRED",
        "Name the partners or channels it allows.",
    )
    check(
        0 < len(reason.strip()) <= 500,
        problems,
        "reason",
        "INVALID_LENGTH",
        "Say why, in 1 to 500 characters.",
    )
    check(all(CHANNEL.match(c) for c in channels), problems, "channels", "INVALID_CHANNEL", "Channel keys.")
    known = set(await session.scalars(select(Partner.id).where(Partner.id.in_(list(partner_ids)))))
    check(set(partner_ids) <= known, problems, "partnerIds", "NOT_FOUND", "Some partners are not yours.")
    raise_problems(problems)
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
CONFIRMING = {ConflictStatus.NOTICE_SENT, ConflictStatus.ESCALATED, ConflictStatus.RESOLVED}
"""Acting on a conflict confirms it: the first time, its partner climbs one step of the ladder."""


async def _confirm(session: AsyncSession, conflict: Conflict, actor: str) -> None:
    partner = await get_partner(session, conflict.partner_id, lock=True)
    partner.violation_level += 1
    partner.updated_at = datetime.now(UTC)
    conflict.confirmed = True
    ladder = (await settings_of(session)).escalation_ladder
    step = ladder[min(partner.violation_level, len(ladder)) - 1]
    session.add(
        _event(
            conflict,
            actor,
            "confirmed",
            f"{partner.name} is at violation level {partner.violation_level} ({step}).",
        )
    )


async def reset_violations(
    session: AsyncSession, partner_id: uuid.UUID, reason: str, *, actor: str
) -> Partner:
    """Back to level 0, with the reason on record (the audit log)."""
    if not 0 < len(reason.strip()) <= 500:
        raise InvalidInput(Problem("reason", "INVALID_LENGTH", "Say why, in 1 to 500 characters."))
    partner = await get_partner(session, partner_id, lock=True)
    before = partner.violation_level
    partner.violation_level, partner.updated_at = 0, datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="partner.reset_violations", target_type="ChannelPartner", target_id=partner.id,
        before={"violation_level": before}, after={"violation_level": 0, "reason": reason.strip()},
    )  # fmt: skip
    return partner


def escalation_step(partner: Partner, ladder: Sequence[str]) -> str | None:
    """Where the partner stands on the tenant's ladder; None at level 0."""
    return (
        ladder[min(partner.violation_level, len(ladder)) - 1] if partner.violation_level and ladder else None
    )


@dataclass(frozen=True, slots=True)
class EvidenceInput:
    observed_at: datetime
    price: int | None = None
    currency: str | None = None
    url: str | None = None
    listing_id: str | None = None
    region: str | None = None
    notes: str | None = None
    attachments: Sequence[str] = ()


def _evidence_rows(
    conflict: Conflict, given: Sequence[EvidenceInput], problems: list[Problem]
) -> list[Evidence]:
    check(len(given) <= 50, problems, "evidence", "TOO_MANY", "At most 50 pieces of evidence at a time.")
    rows = []
    for n, e in enumerate(given[:50]):
        where = f"evidence.{n}"
        currency = e.currency.strip().upper() if e.currency else None
        check(
            e.observed_at.tzinfo is not None,
            problems,
            f"{where}.observedAt",
            "MISSING_TIMEZONE",
            "Give the offset.",
        )
        check(
            (e.price is None) == (currency is None) and (e.price is None or 0 <= e.price <= 10**12),
            problems, f"{where}.price", "INVALID_AMOUNT", "A price in minor units, with its currency.",
        )  # fmt: skip
        check(
            currency is None or is_currency(currency),
            problems,
            f"{where}.currency",
            "INVALID_CURRENCY",
            "ISO 4217.",
        )
        check(
            e.region is None or bool(REGION.match(e.region)),
            problems,
            f"{where}.region",
            "INVALID_REGION",
            "ISO 3166-2.",
        )
        check(
            len(e.notes or "") <= 2000,
            problems,
            f"{where}.notes",
            "INVALID_LENGTH",
            "At most 2,000 characters.",
        )
        check(
            len(e.attachments) <= 20 and all(a.startswith(("https://", "http://")) and len(a) <= 2000 for a in e.attachments),
            problems, f"{where}.attachments", "INVALID_ATTACHMENT", "Up to 20 references, as http(s) URLs.",
        )  # fmt: skip
        rows.append(
            Evidence(
                tenant_id=conflict.tenant_id, id=uuid7(), conflict_id=conflict.id, price=e.price, currency=currency,
                url=e.url, listing_id=e.listing_id, region=e.region, observed_at=e.observed_at, notes=e.notes,
                attachments=list(e.attachments),
            )
        )  # fmt: skip
    return rows


async def record_conflict(
    session: AsyncSession,
    *,
    type: ConflictType,
    cause: Cause,
    partner_id: uuid.UUID,
    sku: str | None,
    channel: str | None,
    region: str | None,
    evidence: Sequence[EvidenceInput],
    owner: str | None,
    note: str | None,
    actor: str,
) -> Conflict:
    """A conflict seen by people rather than detection (poaching, a campaign not run, ...)."""
    partner = await get_partner(session, partner_id)
    problems: list[Problem] = []
    check(
        sku is None or 0 < len(sku) <= MAX_SKU, problems, "sku", "INVALID_LENGTH", f"A SKU of 1 to {MAX_SKU}."
    )
    check(
        channel is None or bool(CHANNEL.match(channel)),
        problems,
        "channel",
        "INVALID_CHANNEL",
        "A channel key.",
    )
    check(region is None or bool(REGION.match(region)), problems, "region", "INVALID_REGION", "ISO 3166-2.")
    check(owner is None or 0 < len(owner) <= 200, problems, "owner", "INVALID_LENGTH", "1 to 200 characters.")
    check(note is None or len(note) <= MAX_NOTE, problems, "note", "INVALID_LENGTH", f"At most {MAX_NOTE}.")
    now = datetime.now(UTC)
    first = min((e.observed_at for e in evidence if e.observed_at.tzinfo is not None), default=now)
    conflict = Conflict(
        tenant_id=partner.tenant_id, id=uuid7(), type=type.value, cause=cause.value, partner_id=partner.id, sku=sku,
        channel=channel or partner.channel, region=region, breaches=max(len(evidence), 1), worst_gap=Decimal(0),
        owner=owner, status=ConflictStatus.OPEN.value, confirmed=False, opened_at=first, last_breach_at=first,
        updated_at=now,
    )  # fmt: skip
    rows = _evidence_rows(conflict, evidence, problems)
    raise_problems(problems)
    session.add(conflict)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        if "uq_conflicts_open" not in str(error):
            raise
        raise InvalidInput(
            Problem(
                "partnerId",
                "ALREADY_OPEN",
                "A conflict is open for this partner, SKU and cause: add to that one.",
            )
        ) from None
    session.add_all(rows)
    session.add(_event(conflict, actor, "opened", note, to_status=ConflictStatus.OPEN.value))
    return await _saved(session, conflict)


async def add_evidence(
    session: AsyncSession, conflict_id: uuid.UUID, evidence: Sequence[EvidenceInput], *, actor: str
) -> Conflict:
    conflict = await get_conflict(session, conflict_id, lock=True)
    problems: list[Problem] = []
    check(len(evidence) > 0, problems, "evidence", "REQUIRED", "Give at least one piece of evidence.")
    rows = _evidence_rows(conflict, evidence, problems)
    raise_problems(problems)
    session.add_all(rows)
    session.add(_event(conflict, actor, "evidence", f"{len(rows)} piece(s) of evidence added"))
    conflict.updated_at = datetime.now(UTC)
    return await _saved(session, conflict)


async def update_conflict(
    session: AsyncSession,
    conflict_id: uuid.UUID,
    *,
    type: ConflictType | None,
    severity: str | None,
    clear_severity: bool,
    actor: str,
) -> Conflict:
    """Retype a conflict, or override its severity (or go back to the computed one)."""
    if severity is not None and severity not in set(Severity):
        raise InvalidInput(Problem("severity", "INVALID_SEVERITY", f"One of {', '.join(Severity)}."))
    conflict = await get_conflict(session, conflict_id, lock=True)
    changes = []
    if type is not None and type.value != conflict.type:
        changes.append(f"type {conflict.type} -> {type.value}")
        conflict.type = type.value
    if clear_severity or severity is not None:
        changes.append(f"severity set to {severity or 'computed'}")
        conflict.severity_override = None if clear_severity else severity
    if changes:
        conflict.updated_at = datetime.now(UTC)
        session.add(_event(conflict, actor, "changed", "; ".join(changes)))
    return await _saved(session, conflict)


async def _saved(session: AsyncSession, conflict: Conflict) -> Conflict:
    """Flushed and read back: `severity` is computed by the database."""
    await session.flush()
    await session.refresh(conflict)
    return conflict


async def get_conflict(session: AsyncSession, conflict_id: uuid.UUID, *, lock: bool = False) -> Conflict:
    return await get_own(session, Conflict, conflict_id, what="conflict", lock=lock)


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
    check(
        to in MOVES[current], problems, "status", "ILLEGAL_TRANSITION",
        f"A conflict that is {current} can go to {', '.join(sorted(MOVES[current])) or 'nothing'}, not {to}.",
    )  # fmt: skip
    if to == ConflictStatus.RESOLVED:
        check(
            strategy is not None,
            problems,
            "resolutionStrategy",
            "REQUIRED",
            "Say which strategy resolved it.",
        )
        check(
            bool(resolution and resolution.strip()), problems, "resolution", "REQUIRED", "Say what was done."
        )
    if to == ConflictStatus.DISMISSED:
        check(bool(note and note.strip()), problems, "note", "REQUIRED", "Say why it is dismissed.")
    check(
        note is None or len(note) <= MAX_NOTE,
        problems,
        "note",
        "INVALID_LENGTH",
        f"At most {MAX_NOTE} characters.",
    )
    check(
        resolution is None or len(resolution) <= 2000,
        problems,
        "resolution",
        "INVALID_LENGTH",
        "At most 2,000 characters.",
    )
    raise_problems(problems)
    now = datetime.now(UTC)
    if to in CONFIRMING and not conflict.confirmed:
        await _confirm(session, conflict, actor)
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


# -- the summary -----------------------------------------------------------------------------------

_SUMMARY = text(
    """
    SELECT count(*) FILTER (WHERE opened_at < :to AND (closed_at IS NULL OR closed_at >= :to)) AS open,
           count(*) FILTER (WHERE opened_at >= :from AND opened_at < :to) AS new,
           count(*) FILTER (WHERE status = 'resolved' AND closed_at >= :from AND closed_at < :to) AS resolved,
           count(*) FILTER (WHERE status = 'dismissed' AND closed_at >= :from AND closed_at < :to) AS dismissed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - opened_at) / 3600)
             FILTER (WHERE status = 'resolved' AND closed_at >= :from AND closed_at < :to) AS median_hours
      FROM conflicts
    """
)
_GROUPS = text(
    """
    SELECT type, cause, channel, partner_id, count(*) AS n
      FROM conflicts WHERE opened_at >= :from AND opened_at < :to
     GROUP BY GROUPING SETS ((type), (cause), (channel), (partner_id))
    """
)
_COMPLIANCE = text(
    """
    SELECT count(*) AS judged, count(*) FILTER (WHERE within_policy) AS within
      FROM listing_observations
     WHERE observed_at >= :from AND observed_at < :to AND within_policy IS NOT NULL
    """
)


@dataclass(frozen=True, slots=True)
class Summary:
    open: int
    new: int
    resolved: int
    dismissed: int
    median_hours_to_resolve: float | None
    by_type: dict[str, int]
    by_cause: dict[str, int]
    by_channel: dict[str, int]
    by_partner: dict[uuid.UUID, int]
    listings_judged: int
    map_compliance: float | None
    """The share of listings seen in the period that kept their price policy."""


async def summary(session: AsyncSession, since: datetime, until: datetime) -> Summary:
    """Conflicts over [since, until): open at its end, new, closed, the median time to resolve,
    new ones by type, cause, channel and partner; and MAP compliance of the listings seen."""
    if until <= since:
        raise InvalidInput(Problem("to", "INVALID_PERIOD", "The period ends after it starts."))
    span = {"from": since, "to": until}
    totals = (await session.execute(_SUMMARY, span)).one()
    groups: dict[str, dict[Any, int]] = {"type": {}, "cause": {}, "channel": {}, "partner_id": {}}
    for row in await session.execute(_GROUPS, span):
        for name, found in groups.items():
            if getattr(row, name) is not None:
                found[getattr(row, name)] = row.n
    compliance = (await session.execute(_COMPLIANCE, span)).one()
    return Summary(
        open=totals.open, new=totals.new, resolved=totals.resolved, dismissed=totals.dismissed,
        median_hours_to_resolve=float(totals.median_hours) if totals.median_hours is not None else None,
        by_type=groups["type"], by_cause=groups["cause"], by_channel=groups["channel"], by_partner=groups["partner_id"],
        listings_judged=compliance.judged,
        map_compliance=compliance.within / compliance.judged if compliance.judged else None,
    )  # fmt: skip
