"""Customer rules: validation and normalisation, tags, filters and keyset pages."""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.customers.models import Customer, CustomerIdentity, CustomerTag, Tag
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_PHONE_LENGTH = 32
MAX_TAG_LENGTH = 64
MAX_SEARCH_LENGTH = 200
MAX_TAGS_PER_CALL = 50
MAX_IDS_PER_CALL = 100


class LifecycleStage(enum.StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    DORMANT = "dormant"
    CHURNED = "churned"


class Segment(enum.StrEnum):
    CORE_LOYAL = "core_loyal"
    POTENTIAL = "potential"
    DORMANT = "dormant"
    NEW = "new"
    CHURNED = "churned"


class ValueTier(enum.StrEnum):
    TOP = "top"
    HIGH = "high"
    CORE = "core"
    ORDINARY = "ordinary"
    PROSPECT = "prospect"


class TagKind(enum.StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"
    INTEREST = "interest"
    SCENARIO = "scenario"
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    search: str | None = None
    tags: Sequence[str] = ()
    lifecycle_stage: LifecycleStage | None = None
    segment: Segment | None = None
    value_tier: ValueTier | None = None


# -- validation --------------------------------------------------------------------------------


def clean_display_name(raw: str, field_name: str = "displayName") -> str:
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            Problem(field_name, "INVALID_LENGTH", f"Use a name of 1 to {MAX_NAME_LENGTH} characters.")
        )
    return name


# Buyers come back: caching the normalised forms saves most of the parsing on imports.
@lru_cache(maxsize=65_536)
def normalise_email(raw: str, field_name: str = "email") -> str:
    """Validated and lower-cased, so that one address is one identity."""
    if len(raw) > MAX_EMAIL_LENGTH:
        raise InvalidInput(
            Problem(field_name, "INVALID_LENGTH", f"An email has at most {MAX_EMAIL_LENGTH} characters.")
        )
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(Problem(field_name, "INVALID_EMAIL", str(error))) from error
    return checked.normalized.lower()


@lru_cache(maxsize=65_536)
def normalise_phone(raw: str, field_name: str = "phone") -> str:
    """E.164 (`+8613812345678`): the country code is required, since tenants sell abroad."""
    if len(raw) > MAX_PHONE_LENGTH:
        raise InvalidInput(
            Problem(
                field_name,
                "INVALID_LENGTH",
                f"A phone number has at most {MAX_PHONE_LENGTH} characters.",
            )
        )
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as error:
        raise InvalidInput(
            Problem(
                field_name,
                "INVALID_PHONE",
                "Give the number with its country code, like +8613812345678.",
            )
        ) from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(Problem(field_name, "INVALID_PHONE", "This is not a valid phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_tag_names(raw: Sequence[str], field_name: str = "tags") -> list[str]:
    if not raw or len(raw) > MAX_TAGS_PER_CALL:
        raise InvalidInput(Problem(field_name, "INVALID_COUNT", f"Give 1 to {MAX_TAGS_PER_CALL} tag names."))
    names: dict[str, str] = {}
    for name in raw:
        cleaned = " ".join(name.split())
        if not cleaned or len(cleaned) > MAX_TAG_LENGTH:
            raise InvalidInput(
                Problem(
                    field_name,
                    "INVALID_LENGTH",
                    f"A tag name has 1 to {MAX_TAG_LENGTH} characters.",
                )
            )
        names.setdefault(cleaned.lower(), cleaned)
    return list(names.values())


def check_id_count(ids: Sequence[uuid.UUID], field_name: str = "ids") -> None:
    if not ids or len(ids) > MAX_IDS_PER_CALL:
        raise InvalidInput(Problem(field_name, "INVALID_COUNT", f"Give 1 to {MAX_IDS_PER_CALL} ids."))


# -- writes ------------------------------------------------------------------------------------


async def create_customer(
    session: AsyncSession,
    *,
    display_name: str,
    email: str | None = None,
    phone: str | None = None,
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT,
) -> Customer:
    customer = Customer(
        tenant_id=current_tenant(session),
        display_name=clean_display_name(display_name),
        email=normalise_email(email) if email else None,
        phone=normalise_phone(phone) if phone else None,
        lifecycle_stage=lifecycle_stage.value,
    )
    session.add(customer)
    await _save_contacts(session, customer, {})
    await session.refresh(customer)
    return customer


async def update_customer(
    session: AsyncSession, customer_id: uuid.UUID, changes: dict[str, str | None]
) -> Customer:
    """Apply `changes` (display_name, email, phone); None clears email or phone."""
    customer = await _get_for_update(session, customer_id)
    previous = {"email": customer.email, "phone": customer.phone}
    if "display_name" in changes:
        customer.display_name = clean_display_name(changes["display_name"] or "")
    if "email" in changes:
        email = changes["email"]
        customer.email = normalise_email(email) if email else None
    if "phone" in changes:
        phone = changes["phone"]
        customer.phone = normalise_phone(phone) if phone else None
    await _save_contacts(session, customer, previous)
    await session.refresh(customer)
    return customer


async def delete_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    try:
        async with session.begin_nested():
            deleted = await session.scalar(
                delete(Customer)
                .where(Customer.id == customer_id, Customer.merged_into_id.is_(None))
                .returning(Customer.id)
            )
    except IntegrityError:
        # A points ledger is kept whole (it is the books): such a profile is erased, not deleted.
        raise InvalidInput(
            Problem(
                "id",
                "HAS_LOYALTY_HISTORY",
                "This customer has loyalty points history, which is kept: erase their personal data instead.",
            )
        ) from None
    if deleted is None:
        raise InvalidInput(
            Problem(
                "id",
                "NOT_FOUND",
                "No active customer has this id (merged profiles change through their survivor).",
            )
        )


async def add_tags(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], tag_names: Sequence[str]
) -> list[Customer]:
    check_id_count(customer_ids)
    names = clean_tag_names(tag_names)
    customers = await _require_customers(session, customer_ids)
    tenant_id = current_tenant(session)
    # Insert the missing tags, then read all of them back: two statements whatever the count.
    await session.execute(
        pg_insert(Tag)
        .values([{"tenant_id": tenant_id, "id": uuid7(), "name": n} for n in names])
        .on_conflict_do_nothing()
    )
    tag_ids = (
        await session.scalars(select(Tag.id).where(func.lower(Tag.name).in_([n.lower() for n in names])))
    ).all()
    await session.execute(
        pg_insert(CustomerTag)
        .values(
            [{"tenant_id": tenant_id, "customer_id": c.id, "tag_id": t} for c in customers for t in tag_ids]
        )
        .on_conflict_do_nothing()
    )
    return customers


async def tag_by_filter(session: AsyncSession, flt: CustomerFilter, tag_names: Sequence[str]) -> int:
    """Tag every customer the filter matches, in one statement; returns how many links were new."""
    names = clean_tag_names(tag_names)
    tenant_id = current_tenant(session)
    await session.execute(
        pg_insert(Tag)
        .values([{"tenant_id": tenant_id, "id": uuid7(), "name": n} for n in names])
        .on_conflict_do_nothing()
    )
    matching = _filtered(select(Customer.tenant_id, Customer.id), flt).subquery()
    tagged = await session.execute(
        pg_insert(CustomerTag)
        .from_select(
            ["tenant_id", "customer_id", "tag_id"],
            # Every matching customer with every named tag (of the one tenant RLS shows).
            select(matching.c.tenant_id, matching.c.id, Tag.id)
            .join(Tag, Tag.tenant_id == matching.c.tenant_id)
            .where(func.lower(Tag.name).in_([n.lower() for n in names])),
        )
        .on_conflict_do_nothing()
        .returning(CustomerTag.customer_id)
    )
    return len(tagged.all())


async def remove_tags(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], tag_names: Sequence[str]
) -> list[Customer]:
    check_id_count(customer_ids)
    names = [n.lower() for n in clean_tag_names(tag_names)]
    customers = await _require_customers(session, customer_ids)
    tag_ids = select(Tag.id).where(func.lower(Tag.name).in_(names))
    await session.execute(
        delete(CustomerTag).where(
            CustomerTag.customer_id.in_([c.id for c in customers]), CustomerTag.tag_id.in_(tag_ids)
        )
    )
    return customers


# -- reads -------------------------------------------------------------------------------------


def _filtered(query: Select[Any], flt: CustomerFilter) -> Select[Any]:
    """Active profiles (not merged into another) matching the filter."""
    query = query.where(Customer.merged_into_id.is_(None))
    if flt.search:
        if len(flt.search) > MAX_SEARCH_LENGTH:
            raise InvalidInput(
                Problem(
                    "filter.search",
                    "INVALID_LENGTH",
                    f"Search for at most {MAX_SEARCH_LENGTH} characters.",
                )
            )
        pattern = "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                Customer.display_name.ilike(pattern),
                Customer.email.ilike(pattern),
                Customer.phone.ilike(pattern),
            )
        )
    if flt.lifecycle_stage is not None:
        query = query.where(Customer.lifecycle_stage == flt.lifecycle_stage.value)
    if flt.segment is not None:
        query = query.where(Customer.rfm_segment == flt.segment.value)
    if flt.value_tier is not None:
        query = query.where(Customer.value_tier == flt.value_tier.value)
    if flt.tags:
        names = [n.lower() for n in clean_tag_names(flt.tags, "filter.tags")]
        having_all = (
            select(CustomerTag.customer_id)
            .join(Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id))
            .where(func.lower(Tag.name).in_(names))
            .group_by(CustomerTag.customer_id)
            .having(func.count() == len(names))
        )
        query = query.where(Customer.id.in_(having_all))
    return query


def customers_page(flt: CustomerFilter, first: int, after: uuid.UUID | None) -> Select[tuple[Customer]]:
    """Up to `first` active customers after the cursor, oldest first (ids are time-ordered)."""
    return keyset_page(_filtered(select(Customer), flt), Customer, first, after)


async def matching_ids(session: AsyncSession, flt: CustomerFilter, *, limit: int) -> list[uuid.UUID]:
    """The ids of the active customers matching the filter; InvalidInput when more than `limit` do."""
    ids = list(
        await session.scalars(_filtered(select(Customer.id), flt).order_by(Customer.id).limit(limit + 1))
    )
    if len(ids) > limit:
        raise InvalidInput(
            Problem("filter", "TOO_MANY_MATCHES", f"More than {limit:,} customers match: narrow the filter.")
        )
    return ids


def customers_count(flt: CustomerFilter) -> Select[tuple[int]]:
    return _filtered(select(func.count()).select_from(Customer), flt)


async def list_customers(
    session: AsyncSession, flt: CustomerFilter, *, first: int, after: uuid.UUID | None = None
) -> list[Customer]:
    return list((await session.scalars(customers_page(flt, first, after))).all())


async def count_customers(session: AsyncSession, flt: CustomerFilter) -> int:
    return await session.scalar(customers_count(flt)) or 0


async def get_customers(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    rows = await session.scalars(select(Customer).where(Customer.id.in_(ids)))
    return {c.id: c for c in rows}


async def tags_of(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Tag]]:
    """Every listed customer's tags, by name, in one query."""
    rows = await session.execute(
        select(CustomerTag.customer_id, Tag)
        .join(Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id))
        .where(CustomerTag.customer_id.in_(customer_ids))
        .order_by(Tag.name)
    )
    found: dict[uuid.UUID, list[Tag]] = defaultdict(list)
    for customer_id, tag in rows:
        found[customer_id].append(tag)
    return found


async def list_tags(session: AsyncSession, *, first: int, after: uuid.UUID | None = None) -> list[Tag]:
    return list((await session.scalars(keyset_page(select(Tag), Tag, first, after))).all())


async def count_tags(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Tag)) or 0


# -- helpers -----------------------------------------------------------------------------------


async def _get_for_update(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = await session.scalar(
        select(Customer)
        .where(Customer.id == customer_id, Customer.merged_into_id.is_(None))
        .with_for_update()
    )
    if customer is not None and customer.erased_at is not None:
        raise InvalidInput(
            Problem("id", "ERASED", "This person's data was erased; the profile cannot be edited.")
        )
    if customer is None:
        raise InvalidInput(
            Problem(
                "id",
                "NOT_FOUND",
                "No active customer has this id (merged profiles change through their survivor).",
            )
        )
    return customer


async def _require_customers(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Customer]:
    """The active customers with these ids; InvalidInput unless every id names one."""
    found = {c.id: c for c in (await get_customers(session, ids)).values() if c.merged_into_id is None}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            Problem(
                "ids",
                "NOT_FOUND",
                f"{len(missing)} of the ids name no customer; nothing was changed.",
            )
        )
    return [found[i] for i in dict.fromkeys(ids)]


async def _save_contacts(session: AsyncSession, customer: Customer, previous: dict[str, str | None]) -> None:
    """Flush the customer and keep its email and phone identities in step with its contact fields,
    so that identity resolution matches what people type in as well as what channels send."""
    await _flush_unique(session, "email")
    for kind in ("email", "phone"):
        old, new = previous.get(kind), getattr(customer, kind)
        if old == new:
            continue
        if old:
            await session.execute(
                delete(CustomerIdentity).where(
                    CustomerIdentity.customer_id == customer.id,
                    CustomerIdentity.kind == kind,
                    CustomerIdentity.value == old,
                )
            )
        if new:
            session.add(
                CustomerIdentity(
                    tenant_id=customer.tenant_id,
                    customer_id=customer.id,
                    kind=kind,
                    value=new,
                    source="manual",
                )
            )
            await _flush_unique(session, kind)


async def _flush_unique(session: AsyncSession, field: str) -> None:
    """Flush; a unique violation means another customer holds this `field` already."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        if "uq_customers_tenant_id_email" in str(error.orig) or "uq_customer_identities" in str(error.orig):
            raise InvalidInput(
                Problem(field, f"DUPLICATE_{field.upper()}", f"Another customer already has this {field}.")
            ) from error
        raise
