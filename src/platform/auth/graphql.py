"""API keys in GraphQL, for admins: create (the key is shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime

import strawberry

from brandloop.auth import service
from brandloop.auth.models import ApiKey as ApiKeyRow
from brandloop.auth.permissions import Permission, Role
from brandloop.errors import InvalidInput, Problem
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import (
    BadInput,
    Connection,
    global_id,
    paginate,
    pk_of,
)

RoleEnum = strawberry.enum(Role, name="Role", description="What a caller may do; see docs/graphql.md.")


@strawberry.type(
    name="ApiKey", description="A key for a partner integration. The secret is never shown again."
)
class ApiKeyType:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The visible start of the key, to tell keys apart.")
    role: RoleEnum  # type: ignore[valid-type]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKeyType:
        return cls(
            id=global_id("ApiKey", row.id),
            name=row.name,
            prefix=row.prefix,
            role=Role(row.role),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type
class ApiKeyQueries:
    @strawberry.field(
        description="The tenant's API keys, oldest first, revoked ones included.",
        extensions=[Needs(Permission.API_KEYS_MANAGE)],
    )
    async def api_keys(self, info: Info, first: int = 20, after: str | None = None) -> Connection[ApiKeyType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.list_api_keys, first=limit, after=cursor),
            count=lambda: ctx.run(service.count_api_keys),
            node=ApiKeyType.of,
        )


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: RoleEnum  # type: ignore[valid-type]
    expires_at: datetime | None = None


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyType | None
    secret: str | None = strawberry.field(
        description="The whole key, for the `Authorization: Bearer` header. Shown only here, once."
    )
    user_errors: list[UserError]


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKeyType | None
    user_errors: list[UserError]


@strawberry.type
class ApiKeyMutations:
    @strawberry.mutation(extensions=[Needs(Permission.API_KEYS_MANAGE)])
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        ctx = info.context
        role = Role(input.role)
        if not ctx.principal.may_grant(role):
            error = InvalidInput(
                Problem("role", "ROLE_TOO_HIGH", "You cannot create a key above your own role.")
            )
            return CreateApiKeyPayload(api_key=None, secret=None, user_errors=user_errors(error))
        try:
            issued = await ctx.mutate(
                service.create_api_key,
                name=input.name,
                role=role,
                expires_at=input.expires_at,
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return CreateApiKeyPayload(api_key=None, secret=None, user_errors=user_errors(error))
        return CreateApiKeyPayload(
            api_key=ApiKeyType.of(issued.api_key), secret=issued.secret, user_errors=[]
        )

    @strawberry.mutation(extensions=[Needs(Permission.API_KEYS_MANAGE)])
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        try:
            try:
                pk = pk_of(input.id, "ApiKey")
            except BadInput as error:
                raise InvalidInput(Problem("id", "INVALID_ID", str(error))) from error
            row = await info.context.mutate(service.revoke_api_key, pk, actor=info.context.principal.subject)
        except InvalidInput as error:
            return ApiKeyPayload(api_key=None, user_errors=user_errors(error))
        return ApiKeyPayload(api_key=ApiKeyType.of(row), user_errors=[])
