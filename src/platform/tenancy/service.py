"""Tenants. Creating and listing them are platform admin operations (owner role, no RLS)."""

from __future__ import annotations

import re
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import list_currencies
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem, Unauthenticated
from brandloop.tenancy.models import Tenant, TenantSettings

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MAX_NAME_LENGTH = 200


async def create_tenant(session: AsyncSession, *, slug: str, name: str) -> Tenant:
    if not SLUG.match(slug):
        raise InvalidInput(
            Problem(
                "slug",
                "INVALID_SLUG",
                "Use 2-63 lower-case letters, digits or '-', starting with a letter or digit.",
            )
        )
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            Problem("name", "INVALID_LENGTH", f"Use a name of 1 to {MAX_NAME_LENGTH} characters.")
        )
    tenant = Tenant(slug=slug, name=name, status="active")
    try:
        async with session.begin_nested():
            session.add(tenant)
    except IntegrityError as error:
        raise InvalidInput(
            Problem("slug", "DUPLICATE", f"A tenant called {slug!r} exists already.")
        ) from error
    await session.refresh(tenant)
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.slug))).all())


async def find_tenant(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def active_tenant(session: AsyncSession) -> Tenant:
    """The session's own tenant (the only one RLS lets it see), refusing a suspended one."""
    tenant = await session.get(Tenant, current_tenant(session))
    if tenant is None or tenant.status != "active":
        raise Unauthenticated("This tenant does not exist or is suspended.")
    return tenant


DEFAULT_LADDER = ("warning", "formal_notice", "supply_hold", "termination")


async def settings_of(session: AsyncSession) -> TenantSettings:
    """The session's tenant's settings; defaults until it changes them."""
    settings = await session.get(TenantSettings, current_tenant(session))
    return settings or TenantSettings(
        tenant_id=current_tenant(session),
        reporting_currency="CNY",
        timezone="UTC",
        dormant_after_days=90,
        churned_after_days=180,
        rfm_window_days=365,
        survey_quiet_days=90,
        nps_min_responses=30,
        detractor_follow_up_hours=48,
        conflict_auto_resolve_hours=72,
        escalation_ladder=list(DEFAULT_LADDER),
    )


async def update_settings(session: AsyncSession, changes: dict[str, object], *, actor: str) -> TenantSettings:
    """Validate and save changed settings (any of reporting_currency, timezone, the day counts)."""
    settings = await session.get(TenantSettings, current_tenant(session), with_for_update=True)
    if settings is None:
        settings = await settings_of(session)
        session.add(settings)
    before = {name: _plain(getattr(settings, name)) for name in changes}
    for name, value in changes.items():
        setattr(settings, name, Decimal(str(value)) if name == "gross_margin" else value)
    problems = []
    if not is_currency(settings.reporting_currency):
        problems.append(
            Problem("reportingCurrency", "INVALID_CURRENCY", "Use an ISO 4217 code such as CNY or USD.")
        )
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            Problem("timezone", "INVALID_TIMEZONE", "Use an IANA time zone such as Asia/Shanghai.")
        )
    if not 0 < settings.dormant_after_days < settings.churned_after_days <= 3650:
        problems.append(
            Problem("dormantAfterDays", "INVALID_THRESHOLDS", "Need 0 < dormant days < churned days <= 3650.")
        )
    if not 30 <= settings.rfm_window_days <= 3650:
        problems.append(Problem("rfmWindowDays", "OUT_OF_RANGE", "The RFM window is 30 to 3650 days."))
    if not 0 <= settings.survey_quiet_days <= 730:
        problems.append(Problem("surveyQuietDays", "OUT_OF_RANGE", "The quiet period is 0 to 730 days."))
    if not 1 <= settings.nps_min_responses <= 10_000:
        problems.append(Problem("npsMinResponses", "OUT_OF_RANGE", "Give 1 to 10,000 responses."))
    if not 1 <= settings.detractor_follow_up_hours <= 24 * 90:
        problems.append(Problem("detractorFollowUpHours", "OUT_OF_RANGE", "Give 1 to 2,160 hours."))
    if not 1 <= settings.conflict_auto_resolve_hours <= 24 * 90:
        problems.append(Problem("conflictAutoResolveHours", "OUT_OF_RANGE", "Give 1 to 2,160 hours."))
    if settings.gross_margin is not None and not Decimal(0) < settings.gross_margin <= Decimal(1):
        problems.append(Problem("grossMargin", "OUT_OF_RANGE", "A share above 0, at most 1 (0.35: 35%)."))
    ladder = settings.escalation_ladder
    if not (
        0 < len(ladder) <= 10
        and all(0 < len(step) <= 40 for step in ladder)
        and len(set(ladder)) == len(ladder)
    ):
        problems.append(
            Problem(
                "escalationLadder", "INVALID_LADDER", "Give 1 to 10 distinct steps of 1 to 40 characters."
            )
        )
    if problems:
        raise InvalidInput(*problems)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="settings.update",
        target_type="TenantSettings",
        before=before,
        after=changes,
    )
    return settings


def _plain(value: object) -> object:
    """A setting as the audit log's JSON holds it."""
    return float(value) if isinstance(value, Decimal) else value


def is_currency(code: str) -> bool:
    return len(code) == 3 and code in _CURRENCIES


_CURRENCIES = frozenset(list_currencies())
