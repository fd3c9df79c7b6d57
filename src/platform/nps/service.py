"""NPS surveys: definitions, invitations (quiet period, consent), responses, follow-up tasks."""

from __future__ import annotations

import contextlib
import enum
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant, get_own
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty import events as loyalty_events
from brandloop.loyalty.rules import EventKind
from brandloop.nps import delivery
from brandloop.nps.models import (
    Invitation,
    InvitationStatus,
    Response,
    Survey,
    SurveyStatus,
    Task,
    TaskStatus,
    Trigger,
)
from brandloop.orders import service as orders
from brandloop.tenancy.service import settings_of

REQUIRED_LANGUAGES = ("zh-CN", "en")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_TEXT = 500
MAX_COMMENT = 2000
MAX_ANSWER = 1000
MAX_FOLLOW_UPS = 5
MAX_OPTIONS = 10
MAX_INVITES_PER_CALL = 10_000
MAX_NOTE = 2000
DETRACTOR_MAX = 6
PROMOTER_MIN = 9


class RespondError(Exception):
    """Why a response was refused: ALREADY_ANSWERED, EXPIRED, INVALID."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- surveys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyInput:
    name: str
    question: dict[str, str]
    channels: Sequence[str]
    comment_prompt: dict[str, str] | None = None
    follow_ups: Sequence[dict[str, Any]] = ()
    """Each: {"key", "kind": "single_choice" | "text", "prompt": {language: text}, "options": [...]}."""
    status: SurveyStatus = SurveyStatus.DRAFT
    trigger: Trigger = Trigger.MANUAL
    trigger_status: str | None = None
    trigger_delay_days: int | None = None
    link_days: int = 14
    follow_up_passives: bool = False


def _texts(where: str, given: dict[str, str] | None, problems: list[Problem], required: bool = True) -> None:
    if given is None:
        return
    missing = [lang for lang in REQUIRED_LANGUAGES if lang not in given] if required else []
    if missing:
        problems.append(Problem(where, "LANGUAGE_MISSING", f"Give the text in {', '.join(missing)} too."))
    for lang, value in given.items():
        if not LANGUAGE.match(lang) or not 0 < len(value.strip()) <= MAX_TEXT:
            problems.append(
                Problem(f"{where}.{lang}", "INVALID_TEXT", f"A language tag and 1 to {MAX_TEXT} characters.")
            )


def _validate(given: SurveyInput) -> list[Problem]:
    problems: list[Problem] = []
    if not 0 < len(given.name.strip()) <= 100:
        problems.append(Problem("name", "INVALID_NAME", "Give a name of 1 to 100 characters."))
    _texts("question", given.question, problems)
    _texts("commentPrompt", given.comment_prompt, problems)
    if not given.channels:
        problems.append(Problem("channels", "REQUIRED", "Name the channels the survey may be sent through."))
    for n, channel in enumerate(given.channels):
        if not orders.CHANNEL.match(channel):
            problems.append(Problem(f"channels.{n}", "INVALID_CHANNEL", "Lower-case letters, digits and _."))
    if len(given.follow_ups) > MAX_FOLLOW_UPS:
        problems.append(Problem("followUps", "TOO_MANY", f"At most {MAX_FOLLOW_UPS} follow-up questions."))
    keys = [f.get("key") for f in given.follow_ups]
    if len(set(keys)) != len(keys):
        problems.append(Problem("followUps", "DUPLICATE_KEY", "Give each follow-up question its own key."))
    for n, follow_up in enumerate(given.follow_ups):
        where = f"followUps.{n}"
        if not re.match(r"^[a-z][a-z0-9_]{0,31}$", str(follow_up.get("key", ""))):
            problems.append(
                Problem(f"{where}.key", "INVALID_KEY", "A key is lower-case letters, digits and _.")
            )
        _texts(f"{where}.prompt", follow_up.get("prompt") or {}, problems)
        options = follow_up.get("options") or []
        if follow_up.get("kind") == "single_choice":
            if not 2 <= len(options) <= MAX_OPTIONS or any(not 0 < len(o) <= 100 for o in options):
                problems.append(
                    Problem(
                        f"{where}.options",
                        "INVALID_OPTIONS",
                        f"Give 2 to {MAX_OPTIONS} options of 1-100 characters.",
                    )
                )
        elif follow_up.get("kind") != "text" or options:
            problems.append(
                Problem(
                    f"{where}.kind", "INVALID_KIND", "A follow-up is single_choice (with options) or text."
                )
            )
    if given.trigger is Trigger.AFTER_ORDER:
        if given.trigger_status not in orders.STATUSES:
            problems.append(
                Problem("triggerStatus", "INVALID_STATUS", "Name the order status that triggers it.")
            )
        if given.trigger_delay_days is None or not 0 <= given.trigger_delay_days <= 365:
            problems.append(Problem("triggerDelayDays", "INVALID_DELAY", "Give 0 to 365 days."))
    elif given.trigger_status is not None or given.trigger_delay_days is not None:
        problems.append(
            Problem("trigger", "INVALID_TRIGGER", "A manual survey takes no order status or delay.")
        )
    if not 1 <= given.link_days <= 90:
        problems.append(Problem("linkDays", "OUT_OF_RANGE", "Links stay valid 1 to 90 days."))
    return problems


def _values(given: SurveyInput) -> dict[str, Any]:
    return {
        "name": given.name.strip(),
        "question": {k: v.strip() for k, v in given.question.items()},
        "comment_prompt": {k: v.strip() for k, v in given.comment_prompt.items()}
        if given.comment_prompt
        else None,
        "follow_ups": [dict(f) for f in given.follow_ups],
        "status": given.status.value,
        "channels": sorted(set(given.channels)),
        "trigger": given.trigger.value,
        "trigger_status": given.trigger_status,
        "trigger_delay_days": given.trigger_delay_days,
        "link_days": given.link_days,
        "follow_up_passives": given.follow_up_passives,
    }


async def create_survey(session: AsyncSession, given: SurveyInput, *, actor: str) -> Survey:
    problems = _validate(given)
    if problems:
        raise InvalidInput(*problems)
    survey = Survey(tenant_id=current_tenant(session), id=uuid7(), **_values(given))
    session.add(survey)
    await session.flush()
    await audit.record(
        session, actor=actor, action="nps.survey.create", target_type="Survey", target_id=survey.id
    )
    return survey


async def update_survey(
    session: AsyncSession, survey_id: uuid.UUID, given: SurveyInput, *, actor: str
) -> Survey:
    survey = await get_survey(session, survey_id, lock=True)
    problems = _validate(given)
    if problems:
        raise InvalidInput(*problems)
    for key, value in _values(given).items():
        setattr(survey, key, value)
    survey.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="nps.survey.update", target_type="Survey", target_id=survey.id
    )
    return survey


async def get_survey(session: AsyncSession, survey_id: uuid.UUID, *, lock: bool = False) -> Survey:
    return await get_own(session, Survey, survey_id, what="survey", field="surveyId", lock=lock)


async def surveys_page(session: AsyncSession, first: int, after: uuid.UUID | None) -> list[Survey]:
    return list(await session.scalars(keyset_page(select(Survey), Survey, first, after)))


async def surveys_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Survey)) or 0)


async def get_surveys(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Survey]:
    return {s.id: s for s in await session.scalars(select(Survey).where(Survey.id.in_(ids)))}


# -- invitations -----------------------------------------------------------------------------------


@dataclass(slots=True)
class InviteResult:
    invitations: list[Invitation] = field(default_factory=list)
    """Sent now, or by an earlier call for the same trigger event (which sends nothing new)."""
    skipped_quiet: int = 0
    """Invited to or answered a survey within the quiet period."""
    skipped_consent: int = 0
    """No survey consent on the channel."""
    skipped_unknown: int = 0
    """Not an active customer of the tenant (unknown, merged or erased)."""
    made: int = 0
    """Invitations made by this call, sent or skipped."""

    def count(self, invitation: Invitation) -> None:
        if invitation.status != InvitationStatus.SKIPPED:
            self.invitations.append(invitation)
        elif invitation.skip_reason == QUIET_PERIOD:
            self.skipped_quiet += 1
        else:
            self.skipped_consent += 1


QUIET_PERIOD, NO_CONSENT = "quiet_period", "no_consent"


@dataclass(frozen=True, slots=True)
class Wanted:
    """One invitation to make: who, through which channel, for which trigger event."""

    customer_id: uuid.UUID
    channel: str
    trigger_key: str
    order_id: uuid.UUID | None = None


_LOCK_CUSTOMERS = text(
    "SELECT id FROM customers WHERE id = ANY(:ids) AND merged_into_id IS NULL AND erased_at IS NULL"
    " ORDER BY id FOR UPDATE"
)
_CONSENTED = text(
    """
    SELECT customer_id, channel FROM (
      SELECT DISTINCT ON (customer_id, channel) customer_id, channel, granted FROM consents
       WHERE customer_id = ANY(:ids) AND purpose = 'surveys'
       ORDER BY customer_id, channel, recorded_at DESC, id DESC) latest
     WHERE granted
    """
)
_RECENTLY_ASKED = text(
    """
    SELECT customer_id FROM nps_invitations
     WHERE customer_id = ANY(:ids) AND created_at > :since AND status <> 'skipped'
    UNION
    SELECT customer_id FROM nps_responses WHERE customer_id = ANY(:ids) AND created_at > :since
    """
)


async def invite(
    session: AsyncSession,
    survey_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    *,
    channel: str,
    campaign_key: str,
    link_for: LinkFor,
) -> InviteResult:
    """Invite customers to an active survey through one of its channels, idempotently: one
    invitation per customer, survey and campaign key (the trigger event)."""
    survey = await get_survey(session, survey_id)
    problems = []
    if survey.status != SurveyStatus.ACTIVE:
        problems.append(Problem("surveyId", "NOT_ACTIVE", "Activate the survey before inviting."))
    if channel not in survey.channels:
        problems.append(
            Problem("channel", "CHANNEL_NOT_ALLOWED", "The survey is not sent through this channel.")
        )
    if not 0 < len(customer_ids) <= MAX_INVITES_PER_CALL:
        problems.append(
            Problem("customerIds", "INVALID_COUNT", f"Invite 1 to {MAX_INVITES_PER_CALL} customers a call.")
        )
    if not 0 < len(campaign_key) <= 100 or not campaign_key.isprintable():
        problems.append(Problem("campaignKey", "INVALID_KEY", "Give a key of 1 to 100 printable characters."))
    if problems:
        raise InvalidInput(*problems)
    wanted = [
        Wanted(c, channel, f"manual:{survey.id}:{c}:{campaign_key}") for c in dict.fromkeys(customer_ids)
    ]
    return await _invite(session, survey, wanted, link_for)


LinkFor = Callable[[Invitation], str]
"""Makes an invitation's link (links.link with the deployment's settings)."""


async def _invite(
    session: AsyncSession, survey: Survey, wanted: Sequence[Wanted], link_for: LinkFor
) -> InviteResult:
    """Make the invitations not made yet. Customers asked by any survey within the quiet period,
    or without survey consent on the channel, get a skipped invitation (so that response rates
    can say why) and nothing is sent."""
    result = InviteResult()
    # Invitations of these customers queue up here: two surveys cannot both slip past the quiet period.
    active = set(await session.scalars(_LOCK_CUSTOMERS, {"ids": [w.customer_id for w in wanted]}))
    result.skipped_unknown = sum(1 for w in wanted if w.customer_id not in active)
    wanted = [w for w in wanted if w.customer_id in active]
    keys = [w.trigger_key for w in wanted]
    earlier = {
        i.trigger_key: i
        for i in await session.scalars(select(Invitation).where(Invitation.trigger_key.in_(keys)))
    }
    for invitation in earlier.values():
        result.count(invitation)
    fresh = [w for w in wanted if w.trigger_key not in earlier]
    if not fresh:
        return result
    ids = list({w.customer_id for w in fresh})
    settings = await settings_of(session)
    now = datetime.now(UTC)
    quiet = set(
        await session.scalars(
            _RECENTLY_ASKED, {"ids": ids, "since": now - timedelta(days=settings.survey_quiet_days)}
        )
    )
    consented = {(c, ch) for c, ch in await session.execute(_CONSENTED, {"ids": ids})}
    rows = []
    for w in fresh:
        reason = (
            QUIET_PERIOD
            if w.customer_id in quiet
            else None
            if (w.customer_id, w.channel) in consented
            else NO_CONSENT
        )
        rows.append(
            {
                "tenant_id": current_tenant(session),
                "id": uuid7(),
                "survey_id": survey.id,
                "customer_id": w.customer_id,
                "channel": w.channel,
                "order_id": w.order_id,
                "trigger_key": w.trigger_key,
                "status": InvitationStatus.SKIPPED.value if reason else InvitationStatus.CREATED.value,
                "skip_reason": reason,
                "expires_at": now + timedelta(days=survey.link_days),
            }
        )
        if reason is None:
            quiet.add(w.customer_id)  # one invitation per customer per call, too
    statement = pg_insert(Invitation).values(rows).on_conflict_do_nothing().returning(Invitation)
    for invitation in await session.scalars(statement):
        result.count(invitation)
        result.made += 1
        if invitation.status == InvitationStatus.CREATED:
            await _deliver(session, invitation, link_for(invitation))
    return result


async def _deliver(session: AsyncSession, invitation: Invitation, link: str) -> None:
    """Hand the link over: to the channel's Delivery when one is registered, else to the tenant
    (link delivery, done by returning it)."""
    sender = delivery.for_channel(invitation.channel)
    if sender is None or await sender.deliver(session, invitation, link):
        invitation.delivered_at = datetime.now(UTC)
        invitation.delivery_error = invitation.delivery_retry_at = None
    await session.flush()


async def redeliver(
    session: AsyncSession, link_for: LinkFor, *, now: datetime | None = None, limit: int = 500
) -> int:
    """The job `nps.redeliver`: invitations a channel failed to take for a passing reason (the
    platform down, its quota spent), tried again once due, until their link expires. Returns how
    many went out."""
    now = now or datetime.now(UTC)
    due = await session.scalars(
        select(Invitation)
        .where(
            Invitation.delivery_retry_at <= now,
            Invitation.status == InvitationStatus.CREATED.value,
            Invitation.delivered_at.is_(None),
        )
        .order_by(Invitation.delivery_retry_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    sent = 0
    for invitation in due.all():
        invitation.delivery_retry_at = None
        if invitation.expires_at > now:
            await _deliver(session, invitation, link_for(invitation))
            sent += invitation.delivered_at is not None
    await session.flush()
    return sent


_DUE_ORDERS = text(
    """
    SELECT o.id, o.customer_id, o.channel FROM orders o
     WHERE o.status = :status AND o.customer_id IS NOT NULL
       AND o.updated_at <= :due AND o.updated_at > :since
       AND NOT EXISTS (SELECT FROM nps_invitations i WHERE i.trigger_key = :prefix || o.id::text)
     ORDER BY o.id LIMIT :limit
    """
)


async def invite_after_orders(
    session: AsyncSession, link_for: LinkFor, *, now: datetime | None = None, limit: int = 5000
) -> int:
    """The job behind AFTER_ORDER surveys: orders that reached the survey's status at least its
    delay ago (and at most a week before that, so a missed run is caught up) get their
    invitation, through the order's channel when the survey allows it, else its first channel.
    Idempotent: one invitation per survey and order. Returns how many invitations it made (sent
    or skipped); a run handles at most `limit` orders per survey, the next run the rest."""
    now = now or datetime.now(UTC)
    surveys = await session.scalars(
        select(Survey).where(Survey.status == SurveyStatus.ACTIVE, Survey.trigger == Trigger.AFTER_ORDER)
    )
    handled = 0
    for survey in surveys:
        assert survey.trigger_delay_days is not None
        due = now - timedelta(days=survey.trigger_delay_days)
        orders_due = await session.execute(
            _DUE_ORDERS,
            {
                "status": survey.trigger_status,
                "due": due,
                "since": due - CATCH_UP,
                "limit": limit,
                "prefix": f"after_order:{survey.id}:",
            },
        )
        wanted = [
            Wanted(
                customer_id,
                channel if channel in survey.channels else survey.channels[0],
                f"after_order:{survey.id}:{order_id}",
                order_id,
            )
            for order_id, customer_id, channel in orders_due
        ]
        if wanted:
            handled += (await _invite(session, survey, wanted, link_for)).made
    return handled


CATCH_UP = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ChannelRate:
    channel: str
    invited: int
    delivered: int
    responded: int
    skipped_quiet: int
    skipped_consent: int


_RATES = text(
    """
    SELECT channel,
           count(*) FILTER (WHERE status <> 'skipped'),
           count(*) FILTER (WHERE delivered_at IS NOT NULL),
           count(*) FILTER (WHERE status = 'responded'),
           count(*) FILTER (WHERE skip_reason = 'quiet_period'),
           count(*) FILTER (WHERE skip_reason = 'no_consent')
      FROM nps_invitations WHERE survey_id = :survey GROUP BY channel ORDER BY channel
    """
)


async def response_rates(session: AsyncSession, survey_id: uuid.UUID) -> list[ChannelRate]:
    return [ChannelRate(*row) for row in await session.execute(_RATES, {"survey": survey_id})]


async def invitations_page(
    session: AsyncSession, survey_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Invitation]:
    query = select(Invitation).where(Invitation.survey_id == survey_id)
    return list(await session.scalars(keyset_page(query, Invitation, first, after)))


async def invitations_count(session: AsyncSession, survey_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Invitation).where(Invitation.survey_id == survey_id)
    return int(await session.scalar(query) or 0)


# -- responses -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Form:
    """What a respondent sees: the survey's texts, the brand, and whether it is still open."""

    brand: str
    survey: Survey
    invitation: Invitation


async def form(session: AsyncSession, invitation_id: uuid.UUID, brand: str) -> Form:
    invitation = await session.get(Invitation, (current_tenant(session), invitation_id))
    if invitation is None:
        raise RespondError("NOT_FOUND", "This survey link is not valid.")
    survey = await session.get(Survey, (current_tenant(session), invitation.survey_id))
    assert survey is not None
    return Form(brand=brand, survey=survey, invitation=invitation)


def _check_answers(survey: Survey, score: object, comment: object, answers: object) -> list[dict[str, str]]:
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise RespondError("INVALID", "`score` is a whole number from 0 to 10.")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise RespondError("INVALID", f"`comment` is text of at most {MAX_COMMENT} characters.")
    if comment is not None and survey.comment_prompt is None:
        raise RespondError("INVALID", "This survey asks for no comment.")
    given = answers if answers is not None else []
    if not isinstance(given, list):
        raise RespondError("INVALID", "`answers` is a list of {key, value}.")
    questions = {f["key"]: f for f in survey.follow_ups}
    checked: list[dict[str, str]] = []
    for answer in given:
        if not isinstance(answer, dict) or set(answer) != {"key", "value"} or answer["key"] not in questions:
            raise RespondError("INVALID", "Each answer is {key, value} for one of the survey's questions.")
        value, question = answer["value"], questions[answer["key"]]
        if not isinstance(value, str) or len(value) > MAX_ANSWER:
            raise RespondError("INVALID", f"An answer is text of at most {MAX_ANSWER} characters.")
        if question["kind"] == "single_choice" and value not in question["options"]:
            raise RespondError("INVALID", f"Answer {answer['key']!r} with one of its options.")
        checked.append({"key": answer["key"], "value": value})
    if len({a["key"] for a in checked}) != len(checked):
        raise RespondError("INVALID", "Answer each question at most once.")
    return checked


async def respond(
    session: AsyncSession, invitation_id: uuid.UUID, *, score: object, comment: object, answers: object
) -> Response:
    """Record the one response an invitation allows; a detractor's opens a follow-up task."""
    invitation = await session.get(Invitation, (current_tenant(session), invitation_id), with_for_update=True)
    if invitation is None:
        raise RespondError("NOT_FOUND", "This survey link is not valid.")
    # After the lock: a second submission waits for the first and then sees it.
    if invitation.status == InvitationStatus.RESPONDED:
        raise RespondError("ALREADY_ANSWERED", "This survey was already answered. Thank you!")
    now = datetime.now(UTC)
    if invitation.expires_at <= now:
        raise RespondError("EXPIRED", "This survey link has expired.")
    survey = await session.get(Survey, (current_tenant(session), invitation.survey_id))
    assert survey is not None
    if survey.status == SurveyStatus.CLOSED:
        raise RespondError("EXPIRED", "This survey is closed.")
    checked = _check_answers(survey, score, comment, answers)
    assert isinstance(score, int)
    response = Response(
        tenant_id=current_tenant(session),
        id=uuid7(),
        invitation_id=invitation.id,
        survey_id=survey.id,
        customer_id=invitation.customer_id,
        channel=invitation.channel,
        order_id=invitation.order_id,
        score=score,
        comment=comment if isinstance(comment, str) else None,
        answers=checked,
        created_at=now,
    )
    session.add(response)
    invitation.status = InvitationStatus.RESPONDED.value
    invitation.responded_at = now
    await session.flush()
    if score <= DETRACTOR_MAX or (survey.follow_up_passives and score < PROMOTER_MIN):
        settings = await settings_of(session)
        session.add(
            Task(
                tenant_id=current_tenant(session),
                id=uuid7(),
                response_id=response.id,
                status=TaskStatus.OPEN.value,
                due_at=now + timedelta(hours=settings.detractor_follow_up_hours),
                notes=[],
            )
        )
        await session.flush()
    # A customer merged since the invitation earns no points; the response stands.
    with contextlib.suppress(InvalidInput):
        await loyalty_events.award(
            session,
            customer_id=invitation.customer_id,
            kind=EventKind.NPS_RESPONSE,
            idempotency_key=f"nps:{response.id}",
            occurred_at=now,
            actor="system:nps",
        )
    return response


async def responses_page(
    session: AsyncSession, survey_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Response]:
    query = select(Response).where(Response.survey_id == survey_id)
    return list(await session.scalars(keyset_page(query, Response, first, after)))


async def responses_count(session: AsyncSession, survey_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Response).where(Response.survey_id == survey_id)
    return int(await session.scalar(query) or 0)


async def get_responses(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Response]:
    return {r.id: r for r in await session.scalars(select(Response).where(Response.id.in_(ids)))}


# -- follow-up tasks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    overdue: bool | None = None
    owner: str | None = None


def _tasks(flt: TaskFilter) -> Any:
    query = select(Task)
    if flt.status is not None:
        query = query.where(Task.status == flt.status.value)
    if flt.owner is not None:
        query = query.where(Task.owner == flt.owner)
    if flt.overdue is not None:
        late = (Task.status != TaskStatus.RESOLVED.value) & (Task.due_at < func.now())
        query = query.where(late if flt.overdue else ~late)
    return query


async def tasks_page(
    session: AsyncSession, flt: TaskFilter, first: int, after: uuid.UUID | None
) -> list[Task]:
    return list(await session.scalars(keyset_page(_tasks(flt), Task, first, after)))


async def tasks_count(session: AsyncSession, flt: TaskFilter) -> int:
    return int(await session.scalar(select(func.count()).select_from(_tasks(flt).subquery())) or 0)


async def update_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    *,
    owner: str | None = None,
    status: TaskStatus | None = None,
    note: str | None = None,
    actor: str,
) -> Task:
    task = await get_own(session, Task, task_id, what="task", lock=True)
    problems = []
    if owner is not None and not 0 < len(owner.strip()) <= 200:
        problems.append(Problem("owner", "INVALID_OWNER", "Name the owner in 1 to 200 characters."))
    if note is not None and not 0 < len(note.strip()) <= MAX_NOTE:
        problems.append(Problem("note", "INVALID_NOTE", f"A note is 1 to {MAX_NOTE} characters."))
    if problems:
        raise InvalidInput(*problems)
    now = datetime.now(UTC)
    if owner is not None:
        task.owner = owner.strip()
    if status is not None:
        task.status = status.value
        task.resolved_at = now if status is TaskStatus.RESOLVED else None
        if status is not TaskStatus.OPEN and task.followed_up_at is None:
            task.followed_up_at = now
    if note is not None:
        task.notes = [*task.notes, {"at": now.isoformat(), "by": actor, "text": note.strip()}]
    await session.flush()
    return task


# -- reports ---------------------------------------------------------------------------------------


class Grouping(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    CHANNEL = "channel"
    SEGMENT = "segment"


TIME_GROUPINGS = {Grouping.DAY, Grouping.WEEK, Grouping.MONTH}
MAX_REPORT_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class ReportFilter:
    since: datetime
    until: datetime
    survey_id: uuid.UUID | None = None
    channel: str | None = None
    segment: str | None = None
    tier_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    responses: int
    promoters: int
    passives: int
    detractors: int

    @property
    def nps(self) -> float | None:
        if not self.responses:
            return None
        return 100 * (self.promoters - self.detractors) / self.responses

    @property
    def margin_of_error(self) -> float | None:
        """The 95% margin of error of the NPS, in points (docs/nps.md)."""
        if not self.responses:
            return None
        p, d = self.promoters / self.responses, self.detractors / self.responses
        return 1.96 * math.sqrt(max(p + d - (p - d) ** 2, 0) / self.responses) * 100


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str
    counts: Counts
    previous: Counts | None

    @property
    def band(self) -> str | None:
        nps = self.counts.nps
        if nps is None:
            return None
        return (
            "excellent" if nps > 50 else "good" if nps >= 30 else "fair" if nps >= 0 else "needs_improvement"
        )

    @property
    def change(self) -> float | None:
        if self.previous is None or self.previous.nps is None or self.counts.nps is None:
            return None
        return self.counts.nps - self.previous.nps

    @property
    def significant(self) -> bool | None:
        """Whether the change exceeds what chance explains at 95%: |change| > sqrt(moe1^2 + moe2^2)."""
        change = self.change
        if change is None or self.previous is None:
            return None
        assert self.counts.margin_of_error is not None and self.previous.margin_of_error is not None
        return abs(change) > math.hypot(self.counts.margin_of_error, self.previous.margin_of_error)


_REPORT = """
    SELECT {group} AS g,
           count(*) AS responses,
           count(*) FILTER (WHERE r.score >= 9) AS promoters,
           count(*) FILTER (WHERE r.score BETWEEN 7 AND 8) AS passives,
           count(*) FILTER (WHERE r.score <= 6) AS detractors
      FROM nps_responses r
      {joins}
     WHERE r.created_at >= CAST(:since AS timestamptz) AND r.created_at < CAST(:until AS timestamptz)
       {where}
     GROUP BY 1 ORDER BY 1
"""
_GROUPS = {
    Grouping.DAY: "to_char(date_trunc('day', r.created_at AT TIME ZONE :tz), 'YYYY-MM-DD')",
    Grouping.WEEK: "to_char(date_trunc('week', r.created_at AT TIME ZONE :tz), 'YYYY-MM-DD')",
    Grouping.MONTH: "to_char(date_trunc('month', r.created_at AT TIME ZONE :tz), 'YYYY-MM')",
    Grouping.CHANNEL: "r.channel",
    Grouping.SEGMENT: "coalesce(c.rfm_segment, 'none')",
}


async def report(session: AsyncSession, flt: ReportFilter, grouping: Grouping) -> tuple[list[ReportRow], int]:
    """NPS per group over the filter's period, each with the previous period's for comparison
    (the period before for DAY/WEEK/MONTH groups; the same span just before `since` otherwise);
    and the tenant's minimum responses for a group to be read."""
    if not timedelta(0) < flt.until - flt.since <= timedelta(days=MAX_REPORT_DAYS):
        raise InvalidInput(
            Problem("filter.to", "INVALID_PERIOD", f"`from` before `to`, at most {MAX_REPORT_DAYS} days.")
        )
    settings = await settings_of(session)
    joins, where = [], []
    parameters: dict[str, Any] = {"tz": settings.timezone}
    if grouping is Grouping.SEGMENT or flt.segment is not None:
        joins.append("JOIN customers c ON c.id = r.customer_id")
    if flt.segment is not None:
        where.append("AND coalesce(c.rfm_segment, 'none') = :segment")
        parameters["segment"] = flt.segment
    if flt.survey_id is not None:
        where.append("AND r.survey_id = :survey")
        parameters["survey"] = flt.survey_id
    if flt.channel is not None:
        where.append("AND r.channel = :channel")
        parameters["channel"] = flt.channel
    if flt.tier_id is not None:
        where.append(
            "AND EXISTS (SELECT FROM loyalty_accounts a WHERE a.customer_id = r.customer_id AND a.tier_id = :tier)"
        )
        parameters["tier"] = flt.tier_id
    statement = text(_REPORT.format(group=_GROUPS[grouping], joins=" ".join(joins), where=" ".join(where)))

    async def counts(since: datetime, until: datetime) -> dict[str, Counts]:
        rows = await session.execute(statement, {**parameters, "since": since, "until": until})
        return {g: Counts(*values) for g, *values in rows}

    current = await counts(flt.since, flt.until)
    if grouping in TIME_GROUPINGS:
        # Each period compares with the one just before it; the first with the period before `since`.
        start = _period_start(grouping, flt.since.astimezone(ZoneInfo(settings.timezone)))
        earlier = await counts(_shift(grouping, start, -1), start)
        known = {**earlier, **current}
        rows = [
            ReportRow(group, found, known.get(_previous_key(grouping, group)))
            for group, found in current.items()
        ]
    else:
        before = await counts(flt.since - (flt.until - flt.since), flt.since)
        rows = [ReportRow(group, found, before.get(group)) for group, found in current.items()]
    return rows, settings.nps_min_responses


def _period_start(grouping: Grouping, local: datetime) -> datetime:
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if grouping is Grouping.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if grouping is Grouping.MONTH else day


def _shift(grouping: Grouping, start: datetime, periods: int) -> datetime:
    if grouping is Grouping.MONTH:
        return start + relativedelta(months=periods)
    return start + (timedelta(weeks=periods) if grouping is Grouping.WEEK else timedelta(days=periods))


def _previous_key(grouping: Grouping, key: str) -> str:
    if grouping is Grouping.MONTH:
        return _shift(grouping, datetime.strptime(key, "%Y-%m"), -1).strftime("%Y-%m")
    return _shift(grouping, datetime.strptime(key, "%Y-%m-%d"), -1).strftime("%Y-%m-%d")
