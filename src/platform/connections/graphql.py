"""Connections in GraphQL, for tenant admins: the installed connectors, and the tenant's
connections with their plain settings. Secrets go in and never come out: only which are set."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import strawberry
from croniter import croniter
from strawberry.scalars import JSON

from brandloop.auth.permissions import Permission
from brandloop.connections import service, sync
from brandloop.connections.models import Checkpoint, Connection, ConnectionStatus
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.connectors import Authorization, secret_fields
from brandloop.errors import InvalidInput, Problem
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import Connection as Page
from brandloop.graphql.relay import Node, global_id, paginate, pk_of
from brandloop.settings import Settings

ConnectionStatusEnum = strawberry.enum(ConnectionStatus, name="ConnectionStatus")


@strawberry.type(name="ConnectorField")
class FieldType:
    name: str
    secret: bool = strawberry.field(description="Stored encrypted and never returned.")
    required: bool


@strawberry.type(name="ConnectorInfo")
class ConnectorType:
    key: str
    display_name: str
    capabilities: list[str]
    config_fields: list[FieldType]
    config_schema: JSON = strawberry.field(
        description="The configuration's JSON Schema (secrets are writeOnly), for building forms."
    )


@strawberry.type(name="ConnectionSync", description="How the connection's orders sync is doing.")
class SyncType:
    synced_until: datetime = strawberry.field(description="Every change before this is in.")
    lag_seconds: int = strawberry.field(description="How far behind now `syncedUntil` is.")
    failures: int = strawberry.field(description="Failed attempts in a row; 0 when the last one worked.")
    last_error: str | None
    last_success_at: datetime | None
    records_in: int = strawberry.field(description="Records pulled in so far (re-pulled ones included).")
    next_run_at: datetime = strawberry.field(
        description="When it is pulled next: after its backoff, else at the next scheduled sync."
    )

    @classmethod
    def of(cls, checkpoint: Checkpoint, now: datetime) -> SyncType:
        return cls(
            synced_until=checkpoint.synced_until,
            lag_seconds=max(int((now - checkpoint.synced_until).total_seconds()), 0),
            failures=checkpoint.failures,
            last_error=checkpoint.last_error,
            last_success_at=checkpoint.last_success_at,
            records_in=checkpoint.records_in,
            next_run_at=checkpoint.retry_at or next_scheduled_sync(now),
        )


@strawberry.type(name="ChannelConnection")
class ConnectionType(Node):
    connector: str
    name: str
    status: ConnectionStatusEnum  # type: ignore[valid-type]
    config: JSON = strawberry.field(description="The plain settings; secrets are never returned.")
    secrets_set: list[str] = strawberry.field(description="The secret settings that have a value.")
    authorized_at: datetime | None = strawberry.field(description="When the platform last granted access.")
    webhook_url: str = strawberry.field(description="Register it with the platform for its push messages.")
    sync_requested_at: datetime | None = strawberry.field(
        description="An admin asked to sync now; cleared once it has caught up."
    )
    created_at: datetime

    pk: strawberry.Private[uuid.UUID]

    @strawberry.field(description="How far its orders are synced; null before the first sync.")
    async def sync(self, info: Info) -> SyncType | None:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[SyncType | None]:
            found, now = await ctx.run(service.checkpoints_of, ids), datetime.now(UTC)
            return [SyncType.of(c, now) if (c := found.get(i)) is not None else None for i in ids]

        return await ctx.loader("connection.sync", load).load(self.pk)

    @classmethod
    def of(cls, row: Connection, settings: Settings) -> ConnectionType:
        return cls(
            id=global_id("ChannelConnection", row.id),
            pk=row.id,
            connector=row.connector,
            name=row.name,
            status=ConnectionStatus(row.status),
            config=row.config,
            secrets_set=service.secret_names(row),
            authorized_at=row.authorized_at,
            webhook_url=service.webhook_url(settings, row.connector, row.id),
            sync_requested_at=row.sync_requested_at,
            created_at=row.created_at,
        )


@strawberry.type
class ConnectionQueries:
    @strawberry.field(description="The connectors installed.", extensions=[Needs(Permission.SETTINGS_MANAGE)])
    def connectors(self) -> list[ConnectorType]:
        return [
            ConnectorType(
                key=c.key,
                display_name=c.display_name,
                capabilities=sorted(c.capabilities),
                config_fields=[
                    FieldType(
                        name=name, secret=name in secret_fields(c.config_model), required=f.is_required()
                    )
                    for name, f in c.config_model.model_fields.items()
                ],
                config_schema=c.config_model.model_json_schema(),
            )
            for c in service.connectors().values()
        ]

    @strawberry.field(
        description="The tenant's connections, oldest first.", extensions=[Needs(Permission.SETTINGS_MANAGE)]
    )
    async def connections(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Page[ConnectionType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.connections_page, limit, cursor),
            count=lambda: ctx.run(service.connections_count),
            node=lambda row: ConnectionType.of(row, ctx.settings),
        )


@strawberry.input
class CreateConnectionInput:
    connector: str
    name: str
    config: JSON = strawberry.field(description="The connector's settings, secrets included.")


@strawberry.input
class UpdateConnectionInput:
    id: strawberry.ID
    config: JSON = strawberry.field(description="Settings to change; secrets left out keep their value.")


@strawberry.type
class ConnectionPayload:
    connection: ConnectionType | None
    user_errors: list[UserError]


def _settings(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidInput(Problem("config", "INVALID_CONFIG", "Give the settings as an object."))
    return value


@strawberry.input
class ConnectionIdInput:
    id: strawberry.ID


@strawberry.type
class StartAuthorizationPayload:
    url: str | None = strawberry.field(
        description="Open it as the shop's owner; the platform sends you back to /connectors/callback. "
        "Null for connectors whose configuration holds the credentials: they are checked at once."
    )
    connection: ConnectionType | None = strawberry.field(
        description="Active already when the configuration's credentials were accepted."
    )
    user_errors: list[UserError]


@strawberry.type
class ConnectionMutations:
    @strawberry.mutation(
        description="The platform's consent page for a connection (valid 15 minutes), or, where the "
        "configuration holds the credentials (Amazon, WeChat), their check with the platform.",
        extensions=[Needs(Permission.SETTINGS_MANAGE)],
    )
    async def start_authorization(self, info: Info, input: ConnectionIdInput) -> StartAuthorizationPayload:
        ctx = info.context
        connection_id = pk_of(input.id, "ChannelConnection")
        try:
            found = await ctx.run(service.get_connection, connection_id)
            if service.connector(found.connector).authorization == Authorization.REDIRECT:
                url = await ctx.run(service.authorize_url, vault(ctx.settings), ctx.settings, connection_id)
                return StartAuthorizationPayload(url=url, connection=None, user_errors=[])
            async with Platforms() as platforms:
                row = await ctx.mutate(
                    service.connect_with_credentials, vault(ctx.settings), platforms, connection_id
                )
        except InvalidInput as error:
            return StartAuthorizationPayload(url=None, connection=None, user_errors=user_errors(error))
        return StartAuthorizationPayload(
            url=None, connection=ConnectionType.of(row, ctx.settings), user_errors=[]
        )

    @strawberry.mutation(
        description="Pull the connection's changes now (within a minute), lifting any backoff.",
        extensions=[Needs(Permission.SETTINGS_MANAGE)],
    )
    async def sync_connection(self, info: Info, input: ConnectionIdInput) -> ConnectionPayload:
        return await _change(info, sync.request_sync, input.id, actor=info.context.principal.subject)

    @strawberry.mutation(
        description="Stop pulling and refuse webhooks until enabled again.",
        extensions=[Needs(Permission.SETTINGS_MANAGE)],
    )
    async def disable_connection(self, info: Info, input: ConnectionIdInput) -> ConnectionPayload:
        return await _change(
            info, service.set_enabled, input.id, enabled=False, actor=info.context.principal.subject
        )

    @strawberry.mutation(
        description="Undo disableConnection: active again if it has been authorized, else pending.",
        extensions=[Needs(Permission.SETTINGS_MANAGE)],
    )
    async def enable_connection(self, info: Info, input: ConnectionIdInput) -> ConnectionPayload:
        return await _change(
            info, service.set_enabled, input.id, enabled=True, actor=info.context.principal.subject
        )

    @strawberry.mutation(extensions=[Needs(Permission.SETTINGS_MANAGE)])
    async def create_connection(self, info: Info, input: CreateConnectionInput) -> ConnectionPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.create_connection,
                vault(ctx.settings),
                connector_key=input.connector,
                name=input.name,
                config=_settings(input.config),
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return ConnectionPayload(connection=None, user_errors=user_errors(error))
        return ConnectionPayload(connection=ConnectionType.of(row, ctx.settings), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.SETTINGS_MANAGE)])
    async def update_connection(self, info: Info, input: UpdateConnectionInput) -> ConnectionPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.update_connection,
                vault(ctx.settings),
                pk_of(input.id, "ChannelConnection"),
                config=_settings(input.config),
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return ConnectionPayload(connection=None, user_errors=user_errors(error))
        return ConnectionPayload(connection=ConnectionType.of(row, ctx.settings), user_errors=[])


async def _change(
    info: Info, change: Callable[..., Awaitable[Connection]], given_id: strawberry.ID, **options: object
) -> ConnectionPayload:
    ctx = info.context
    try:
        row = await ctx.mutate(change, pk_of(given_id, "ChannelConnection"), **options)
    except InvalidInput as error:
        return ConnectionPayload(connection=None, user_errors=user_errors(error))
    return ConnectionPayload(connection=ConnectionType.of(row, ctx.settings), user_errors=[])


def next_scheduled_sync(now: datetime) -> datetime:
    """The next run of the job `connections.sync`, from its schedule."""
    return croniter(sync.SCHEDULE, now).get_next(datetime)  # type: ignore[no-any-return]
