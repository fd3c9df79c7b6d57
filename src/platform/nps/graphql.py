"""NPS in GraphQL: surveys, invitations with their links, responses, follow-up tasks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from brandloop.auth.permissions import Permission
from brandloop.customers import service as customers
from brandloop.errors import InvalidInput, Problem
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import BadInput, Connection, Node, global_id, paginate, pk_of
from brandloop.nps import links, service
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
from brandloop.orders.service import OrderStatus

if TYPE_CHECKING:
    from brandloop.customers.graphql import CustomerFilterInput, CustomerType

SurveyStatusEnum = strawberry.enum(SurveyStatus, name="SurveyStatus")
TriggerEnum = strawberry.enum(Trigger, name="SurveyTrigger")
InvitationStatusEnum = strawberry.enum(InvitationStatus, name="SurveyInvitationStatus")
TaskStatusEnum = strawberry.enum(TaskStatus, name="NpsTaskStatus")


@strawberry.type(name="SurveyFollowUp")
class FollowUpType:
    key: str
    kind: str = strawberry.field(description="single_choice or text.")
    prompt: JSON = strawberry.field(description="The question by language tag.")
    options: list[str]


@strawberry.type(name="Survey")
class SurveyType(Node):
    pk: strawberry.Private[uuid.UUID]
    name: str
    question: JSON = strawberry.field(description="The question by language tag (zh-CN and en at least).")
    comment_prompt: JSON | None = strawberry.field(description="The open question by language; null: none.")
    follow_ups: list[FollowUpType]
    status: SurveyStatusEnum  # type: ignore[valid-type]
    channels: list[str]
    trigger: TriggerEnum  # type: ignore[valid-type]
    trigger_status: str | None
    trigger_delay_days: int | None
    link_days: int
    follow_up_passives: bool = strawberry.field(description="Passives get a follow-up task too.")
    created_at: datetime

    @classmethod
    def of(cls, row: Survey) -> SurveyType:
        return cls(
            id=global_id("Survey", row.id),
            pk=row.id,
            name=row.name,
            question=row.question,
            comment_prompt=row.comment_prompt,
            follow_ups=[
                FollowUpType(key=f["key"], kind=f["kind"], prompt=f["prompt"], options=f.get("options", []))
                for f in row.follow_ups
            ],
            status=SurveyStatus(row.status),
            channels=list(row.channels),
            trigger=Trigger(row.trigger),
            trigger_status=row.trigger_status,
            trigger_delay_days=row.trigger_delay_days,
            link_days=row.link_days,
            follow_up_passives=row.follow_up_passives,
            created_at=row.created_at,
        )

    @strawberry.field(description="Invitations, oldest first.")
    async def invitations(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[InvitationType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.invitations_page, self.pk, limit, cursor),
            count=lambda: ctx.run(service.invitations_count, self.pk),
            node=lambda row: InvitationType.of(row, info),
        )

    @strawberry.field(description="Per channel: invited, responded, and skipped by reason.")
    async def response_rates(self, info: Info) -> list[ChannelRateType]:
        rows = await info.context.run(service.response_rates, self.pk)
        return [
            ChannelRateType(
                channel=r.channel,
                invited=r.invited,
                delivered=r.delivered,
                responded=r.responded,
                skipped_quiet_period=r.skipped_quiet,
                skipped_no_consent=r.skipped_consent,
                response_rate=r.responded / r.invited if r.invited else None,
            )
            for r in rows
        ]

    @strawberry.field(description="Responses, oldest first.")
    async def responses(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[ResponseType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.responses_page, self.pk, limit, cursor),
            count=lambda: ctx.run(service.responses_count, self.pk),
            node=ResponseType.of,
        )


@strawberry.type(name="SurveyChannelRate")
class ChannelRateType:
    channel: str
    invited: int
    delivered: int = strawberry.field(description="Taken by the channel (link delivery: handed to you).")
    responded: int
    skipped_quiet_period: int
    skipped_no_consent: int
    response_rate: float | None = strawberry.field(description="Responded / invited.")


async def load_survey(info: Info, pk: uuid.UUID) -> SurveyType | None:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[SurveyType | None]:
        found = await ctx.run(service.get_surveys, ids)
        return [SurveyType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("survey", load).load(pk)


async def _customer(info: Info, pk: uuid.UUID) -> CustomerType | None:
    from brandloop.customers.graphql import load_customer

    return await load_customer(info, pk)


@strawberry.type(name="SurveyInvitation")
class InvitationType:
    row: strawberry.Private[Invitation]
    id: strawberry.ID
    channel: str
    status: InvitationStatusEnum  # type: ignore[valid-type]
    skip_reason: str | None = strawberry.field(description="quiet_period or no_consent when SKIPPED.")
    link: str | None = strawberry.field(
        description="Send it to the customer: it is their only credential. Null when skipped."
    )
    expires_at: datetime
    created_at: datetime
    delivered_at: datetime | None = strawberry.field(
        description="When the channel took it (link delivery: when the link was handed over)."
    )
    delivery_error: str | None = strawberry.field(description="Why the channel did not take it.")
    delivery_retry_at: datetime | None = strawberry.field(
        description="When the channel is tried again (it failed for a passing reason)."
    )
    responded_at: datetime | None

    @classmethod
    def of(cls, row: Invitation, info: Info) -> InvitationType:
        skipped = row.status == InvitationStatus.SKIPPED
        return cls(
            row=row,
            id=global_id("SurveyInvitation", row.id),
            channel=row.channel,
            status=InvitationStatus(row.status),
            skip_reason=row.skip_reason,
            link=None if skipped else links.link(info.context.settings, row),
            delivered_at=row.delivered_at,
            delivery_error=row.delivery_error,
            delivery_retry_at=row.delivery_retry_at,
            expires_at=row.expires_at,
            created_at=row.created_at,
            responded_at=row.responded_at,
        )

    @strawberry.field
    async def customer(
        self, info: Info
    ) -> Annotated[CustomerType, strawberry.lazy("brandloop.customers.graphql")] | None:
        return await _customer(info, self.row.customer_id)


def category(score: int) -> str:
    if score >= service.PROMOTER_MIN:
        return "PROMOTER"
    return "DETRACTOR" if score <= service.DETRACTOR_MAX else "PASSIVE"


@strawberry.type(name="SurveyResponse")
class ResponseType:
    row: strawberry.Private[Response]
    id: strawberry.ID
    score: int
    category: str = strawberry.field(description="PROMOTER (9-10), PASSIVE (7-8) or DETRACTOR (0-6).")
    comment: str | None = strawberry.field(description="As the customer wrote it: render it escaped.")
    answers: JSON
    channel: str
    created_at: datetime

    @classmethod
    def of(cls, row: Response) -> ResponseType:
        return cls(
            row=row,
            id=global_id("SurveyResponse", row.id),
            score=row.score,
            category=category(row.score),
            comment=row.comment,
            answers=row.answers,
            channel=row.channel,
            created_at=row.created_at,
        )

    @strawberry.field
    async def customer(
        self, info: Info
    ) -> Annotated[CustomerType, strawberry.lazy("brandloop.customers.graphql")] | None:
        return await _customer(info, self.row.customer_id)

    @strawberry.field
    async def survey(self, info: Info) -> SurveyType:
        found = await load_survey(info, self.row.survey_id)
        assert found is not None
        return found


@strawberry.type(name="NpsTaskNote")
class NoteType:
    at: datetime
    by: str
    text: str


@strawberry.type(name="NpsTask", description="A follow-up of a detractor's response.")
class TaskType:
    row: strawberry.Private[Task]
    id: strawberry.ID
    owner: str | None
    status: TaskStatusEnum  # type: ignore[valid-type]
    due_at: datetime
    overdue: bool
    notes: list[NoteType]
    created_at: datetime
    resolved_at: datetime | None
    followed_up_at: datetime | None = strawberry.field(
        description="When it was first marked contacted or resolved: on time when by dueAt."
    )

    @classmethod
    def of(cls, row: Task) -> TaskType:
        return cls(
            row=row,
            id=global_id("NpsTask", row.id),
            owner=row.owner,
            status=TaskStatus(row.status),
            due_at=row.due_at,
            overdue=row.status != TaskStatus.RESOLVED and row.due_at < datetime.now(UTC),
            notes=[
                NoteType(at=datetime.fromisoformat(n["at"]), by=n["by"], text=n["text"]) for n in row.notes
            ],
            created_at=row.created_at,
            resolved_at=row.resolved_at,
            followed_up_at=row.followed_up_at,
        )

    @strawberry.field(description="The response that opened the task, with its customer.")
    async def response(self, info: Info) -> ResponseType:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[ResponseType]:
            found = await ctx.run(service.get_responses, ids)
            return [ResponseType.of(found[i]) for i in ids]

        return await ctx.loader("nps.response", load).load(self.row.response_id)


@strawberry.input
class NpsTaskFilterInput:
    status: TaskStatusEnum | None = None  # type: ignore[valid-type]
    overdue: bool | None = None
    owner: str | None = None


GroupingEnum = strawberry.enum(service.Grouping, name="NpsGroupBy")


@strawberry.input
class NpsReportFilterInput:
    since: datetime = strawberry.field(name="from", description="Inclusive.")
    until: datetime = strawberry.field(
        name="to", description="Exclusive; at most about three years after `from`."
    )
    survey_id: strawberry.ID | None = None
    channel: str | None = None
    segment: str | None = strawberry.field(
        default=None, description="An RFM segment (core_loyal, potential, dormant, new, churned) or none."
    )
    tier_id: strawberry.ID | None = strawberry.field(default=None, description="A loyalty tier held.")


@strawberry.type(name="NpsReportGroup")
class ReportGroupType:
    key: str = strawberry.field(
        description="The period's start (tenant time zone), the channel or the segment."
    )
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None = strawberry.field(description="%promoters - %detractors, -100 to 100.")
    margin_of_error: float | None = strawberry.field(description="95% margin of error of the NPS, in points.")
    band: str | None = strawberry.field(
        description="excellent (> 50), good (30-50), fair (0-30), needs_improvement."
    )
    too_few_responses: bool = strawberry.field(description="Fewer than the tenant's minimum: read with care.")
    previous_responses: int | None
    previous_nps: float | None
    change: float | None = strawberry.field(description="Against the previous period.")
    significant: bool | None = strawberry.field(description="Whether the change is significant at 95%.")


@strawberry.type(name="NpsReport")
class ReportType:
    min_responses: int
    groups: list[ReportGroupType]


@strawberry.type
class NpsQueries:
    @strawberry.field(
        description="The tenant's surveys, oldest first.", extensions=[Needs(Permission.SURVEYS_READ)]
    )
    async def surveys(self, info: Info, first: int = 20, after: str | None = None) -> Connection[SurveyType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.surveys_page, limit, cursor),
            count=lambda: ctx.run(service.surveys_count),
            node=SurveyType.of,
        )

    @strawberry.field(
        description="One survey; null when none of yours has this id.",
        extensions=[Needs(Permission.SURVEYS_READ)],
    )
    async def survey(self, info: Info, id: strawberry.ID) -> SurveyType | None:
        return await load_survey(info, pk_of(id, "Survey"))

    @strawberry.field(
        description="NPS per period, channel or segment, with margins of error and the change against the "
        "previous period (docs/nps.md has the formulas).",
        extensions=[Needs(Permission.SURVEYS_READ)],
    )
    async def nps_report(
        self,
        info: Info,
        filter: NpsReportFilterInput,
        group_by: GroupingEnum,  # type: ignore[valid-type]
    ) -> ReportType:
        flt = service.ReportFilter(
            since=filter.since,
            until=filter.until,
            survey_id=pk_of(filter.survey_id, "Survey") if filter.survey_id else None,
            channel=filter.channel,
            segment=filter.segment,
            tier_id=pk_of(filter.tier_id, "LoyaltyTier") if filter.tier_id else None,
        )
        try:
            rows, minimum = await info.context.run(service.report, flt, service.Grouping(group_by))
        except InvalidInput as error:
            raise BadInput(str(error)) from error
        return ReportType(
            min_responses=minimum,
            groups=[
                ReportGroupType(
                    key=row.group,
                    responses=row.counts.responses,
                    promoters=row.counts.promoters,
                    passives=row.counts.passives,
                    detractors=row.counts.detractors,
                    nps=_round(row.counts.nps),
                    margin_of_error=_round(row.counts.margin_of_error),
                    band=row.band,
                    too_few_responses=row.counts.responses < minimum,
                    previous_responses=row.previous.responses if row.previous else None,
                    previous_nps=_round(row.previous.nps) if row.previous else None,
                    change=_round(row.change),
                    significant=row.significant,
                )
                for row in rows
            ],
        )

    @strawberry.field(
        description="Follow-up tasks, oldest first; `overdue` ones are past due and not resolved.",
        extensions=[Needs(Permission.SURVEYS_READ)],
    )
    async def nps_tasks(
        self, info: Info, first: int = 20, after: str | None = None, filter: NpsTaskFilterInput | None = None
    ) -> Connection[TaskType]:
        ctx = info.context
        flt = service.TaskFilter(
            status=TaskStatus(filter.status) if filter and filter.status else None,
            overdue=filter.overdue if filter else None,
            owner=filter.owner if filter else None,
        )
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.tasks_page, flt, limit, cursor),
            count=lambda: ctx.run(service.tasks_count, flt),
            node=TaskType.of,
        )


@strawberry.input(name="SurveyFollowUpInput")
class SurveyFollowUpInput:
    key: str
    kind: str = strawberry.field(description="single_choice or text.")
    prompt: JSON = strawberry.field(description="By language tag, zh-CN and en at least.")
    options: list[str] = strawberry.field(default_factory=list)


@strawberry.input(name="SurveyInput")
class SurveyInputType:
    name: str
    question: JSON = strawberry.field(description='By language tag: {"zh-CN": "...", "en": "..."}.')
    channels: list[str]
    comment_prompt: JSON | None = None
    follow_ups: list[SurveyFollowUpInput] = strawberry.field(default_factory=list)
    status: SurveyStatusEnum = SurveyStatus.DRAFT  # type: ignore[valid-type]
    trigger: TriggerEnum = Trigger.MANUAL  # type: ignore[valid-type]
    trigger_status: str | None = strawberry.field(
        default=None, description=f"For AFTER_ORDER: one of {', '.join(s.value for s in OrderStatus)}."
    )
    trigger_delay_days: int | None = None
    link_days: int = 14
    follow_up_passives: bool = False

    def to_input(self) -> service.SurveyInput:
        def texts(value: object, where: str) -> dict[str, str]:
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise InvalidInput(Problem(where, "INVALID_TEXT", "Give an object of language: text."))
            return {str(k): v for k, v in value.items()}

        return service.SurveyInput(
            name=self.name,
            question=texts(self.question, "question"),
            channels=self.channels,
            comment_prompt=texts(self.comment_prompt, "commentPrompt")
            if self.comment_prompt is not None
            else None,
            follow_ups=[
                {
                    "key": f.key,
                    "kind": f.kind,
                    "prompt": texts(f.prompt, f"followUps.{n}.prompt"),
                    "options": f.options,
                }
                for n, f in enumerate(self.follow_ups)
            ],
            status=SurveyStatus(self.status),
            trigger=Trigger(self.trigger),
            trigger_status=self.trigger_status,
            trigger_delay_days=self.trigger_delay_days,
            link_days=self.link_days,
            follow_up_passives=self.follow_up_passives,
        )


@strawberry.input
class UpdateSurveyInput(SurveyInputType):
    id: strawberry.ID


@strawberry.type
class SurveyPayload:
    survey: SurveyType | None
    user_errors: list[UserError]


@strawberry.input(description="Whom to invite: customerIds, or the customers a filter matches (or both).")
class InviteToSurveyInput:
    survey_id: strawberry.ID
    channel: str
    customer_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    filter: Annotated[CustomerFilterInput, strawberry.lazy("brandloop.customers.graphql")] | None = None
    campaign_key: str = strawberry.field(
        description="Names this invitation round: the same key again invites nobody twice."
    )


@strawberry.type
class InviteToSurveyPayload:
    invitations: list[InvitationType]
    skipped_quiet_period: int = strawberry.field(description="Asked by a survey within the quiet period.")
    skipped_no_consent: int = strawberry.field(description="No survey consent on the channel.")
    skipped_unknown: int = strawberry.field(description="Not an active customer (unknown, merged or erased).")
    user_errors: list[UserError]


@strawberry.input
class UpdateNpsTaskInput:
    id: strawberry.ID
    owner: str | None = None
    status: TaskStatusEnum | None = None  # type: ignore[valid-type]
    note: str | None = strawberry.field(default=None, description="Appended to the task's notes.")


@strawberry.type
class NpsTaskPayload:
    task: TaskType | None
    user_errors: list[UserError]


@strawberry.type
class NpsMutations:
    @strawberry.mutation(extensions=[Needs(Permission.SURVEYS_WRITE)])
    async def create_survey(self, info: Info, input: SurveyInputType) -> SurveyPayload:
        try:
            row = await info.context.mutate(
                service.create_survey, input.to_input(), actor=info.context.principal.subject
            )
        except InvalidInput as error:
            return SurveyPayload(survey=None, user_errors=user_errors(error))
        return SurveyPayload(survey=SurveyType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.SURVEYS_WRITE)])
    async def update_survey(self, info: Info, input: UpdateSurveyInput) -> SurveyPayload:
        try:
            row = await info.context.mutate(
                service.update_survey,
                pk_of(input.id, "Survey"),
                input.to_input(),
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return SurveyPayload(survey=None, user_errors=user_errors(error))
        return SurveyPayload(survey=SurveyType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Invite customers (link delivery: the links are returned for you to send). Skips the quiet "
        "period and customers without survey consent on the channel.",
        extensions=[Needs(Permission.SURVEYS_WRITE)],
    )
    async def invite_to_survey(self, info: Info, input: InviteToSurveyInput) -> InviteToSurveyPayload:
        async def invite(session: AsyncSession) -> service.InviteResult:
            chosen = [pk_of(c, "Customer") for c in input.customer_ids]
            if input.filter is not None:
                chosen += await customers.matching_ids(
                    session, input.filter.to_filter(), limit=service.MAX_INVITES_PER_CALL
                )
            return await service.invite(
                session,
                pk_of(input.survey_id, "Survey"),
                chosen,
                channel=input.channel,
                campaign_key=input.campaign_key,
                link_for=lambda invitation: links.link(info.context.settings, invitation),
            )

        try:
            result = await info.context.mutate(invite)
        except InvalidInput as error:
            return InviteToSurveyPayload(
                invitations=[],
                skipped_quiet_period=0,
                skipped_no_consent=0,
                skipped_unknown=0,
                user_errors=user_errors(error),
            )
        return InviteToSurveyPayload(
            invitations=[InvitationType.of(i, info) for i in result.invitations],
            skipped_quiet_period=result.skipped_quiet,
            skipped_no_consent=result.skipped_consent,
            skipped_unknown=result.skipped_unknown,
            user_errors=[],
        )

    @strawberry.mutation(
        description="Assign, move on (CONTACTED, RESOLVED) or add a note to a follow-up task.",
        extensions=[Needs(Permission.SURVEYS_WRITE)],
    )
    async def update_nps_task(self, info: Info, input: UpdateNpsTaskInput) -> NpsTaskPayload:
        try:
            row = await info.context.mutate(
                service.update_task,
                pk_of(input.id, "NpsTask"),
                owner=input.owner,
                status=TaskStatus(input.status) if input.status else None,
                note=input.note,
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return NpsTaskPayload(task=None, user_errors=user_errors(error))
        return NpsTaskPayload(task=TaskType.of(row), user_errors=[])


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None
