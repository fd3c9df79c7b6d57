"""Connections to channels: configured per tenant through the connector's own configuration
model; its secret fields are sealed in the vault and never leave it except to the connector."""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from brandloop.audit import service as audit
from brandloop.connections.models import Checkpoint, Connection, ConnectionStatus
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import Vault
from brandloop.connectors import (
    AuthorizationRevoked,
    BuyerRecord,
    Connector,
    ConnectorConfig,
    Grant,
    PlatformError,
    TokenExpired,
    discover,
    secret_fields,
)
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant, engine_of, get_own, tenant_transaction
from brandloop.errors import InvalidInput, Problem
from brandloop.orders.service import BuyerInput
from brandloop.settings import Settings
from brandloop.signing import BadToken, sign, signing_key, verify

MAX_NAME = 100
log = structlog.get_logger("brandloop.connections")


@functools.cache
def connectors() -> dict[str, Connector]:
    """The installed connectors, found once per process."""
    return discover()


def connector(key: str) -> Connector:
    found = connectors().get(key)
    if found is None:
        raise InvalidInput(
            Problem("connector", "UNKNOWN_CONNECTOR", f"No connector {key!r} is installed; see `connectors`.")
        )
    return found


def _validated(plugin: Connector, given: Mapping[str, Any]) -> ConnectorConfig:
    try:
        return plugin.config_model.model_validate(dict(given))
    except ValidationError as error:
        raise InvalidInput(
            *(
                Problem(".".join(["config", *(str(p) for p in e["loc"])]), "INVALID_CONFIG", e["msg"])
                for e in error.errors()
            )
        ) from None


def _split(plugin: Connector, config: ConnectorConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The plain fields (as JSON) and the secret ones (as text)."""
    hidden = set(secret_fields(plugin.config_model))
    plain = config.model_dump(mode="json", exclude=hidden)
    secret = {
        name: value.get_secret_value()
        for name in hidden
        if isinstance(value := getattr(config, name), SecretStr)
    }
    return plain, secret


async def create_connection(
    session: AsyncSession,
    vault: Vault,
    *,
    connector_key: str,
    name: str,
    config: Mapping[str, Any],
    actor: str,
) -> Connection:
    plugin = connector(connector_key)
    if not 0 < len(name.strip()) <= MAX_NAME:
        raise InvalidInput(Problem("name", "INVALID_NAME", f"Give a name of 1 to {MAX_NAME} characters."))
    plain, secret = _split(plugin, _validated(plugin, config))
    tenant_id, connection_id = current_tenant(session), uuid7()
    connection = Connection(
        tenant_id=tenant_id,
        id=connection_id,
        connector=plugin.key,
        name=name.strip(),
        config=plain,
        secrets=vault.seal(json.dumps(secret).encode(), tenant_id, connection_id),
        key_id=vault.key_id,
        status=ConnectionStatus.PENDING.value,
    )
    session.add(connection)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise InvalidInput(
            Problem("name", "NAME_TAKEN", "Another connection of this connector has this name.")
        ) from None
    await audit.record(
        session, actor=actor, action="connection.create", target_type="Connection", target_id=connection_id,
        after={"connector": plugin.key, "name": connection.name, "config": plain, "secrets": sorted(secret)},
    )  # fmt: skip
    return connection


async def update_connection(
    session: AsyncSession, vault: Vault, connection_id: uuid.UUID, *, config: Mapping[str, Any], actor: str
) -> Connection:
    """Change the configuration; secret fields left out keep their value."""
    connection = await get_connection(session, connection_id, lock=True)
    plugin = connector(connection.connector)
    kept = opened(vault, connection)
    merged = {**connection.config, **kept, **config}
    plain, secret = _split(plugin, _validated(plugin, merged))
    connection.config = plain
    connection.secrets = vault.seal(json.dumps(secret).encode(), connection.tenant_id, connection.id)
    connection.key_id = vault.key_id
    connection.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="connection.update", target_type="Connection", target_id=connection.id,
        after={"config": plain, "secrets_changed": sorted(k for k in config if k in secret)},
    )  # fmt: skip
    return connection


def opened(vault: Vault, connection: Connection) -> dict[str, str]:
    """The secret fields, for the connector's use only."""
    return dict(json.loads(vault.open(connection.secrets, connection.tenant_id, connection.id)))


def configuration(vault: Vault, connection: Connection) -> ConnectorConfig:
    """The whole configuration, as the connector takes it."""
    plugin = connector(connection.connector)
    return plugin.config_model.model_validate({**connection.config, **opened(vault, connection)})


def secret_names(connection: Connection) -> list[str]:
    return sorted(secret_fields(connector(connection.connector).config_model))


async def get_connection(
    session: AsyncSession, connection_id: uuid.UUID, *, lock: bool = False
) -> Connection:
    return await get_own(session, Connection, connection_id, what="connection", lock=lock)


async def connections_page(
    session: AsyncSession, first: int, after: uuid.UUID | None
) -> Sequence[Connection]:
    return list(await session.scalars(keyset_page(select(Connection), Connection, first, after)))


async def connections_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Connection)) or 0)


# -- authorization ---------------------------------------------------------------------------------

STATE_MINUTES = 15
CALLBACK_PATH = "/connectors/callback"


def callback_url(settings: Settings) -> str:
    """Where platforms send the admin back (register it with each platform's app)."""
    return f"{settings.public_url.rstrip('/')}{CALLBACK_PATH}"


def webhook_url(settings: Settings, connector_key: str, connection_id: uuid.UUID) -> str:
    """Where a platform delivers a connection's webhooks (register it with the platform)."""
    return f"{settings.public_url.rstrip('/')}/webhooks/{connector_key}/{connection_id}"


async def authorize_url(
    session: AsyncSession, vault: Vault, settings: Settings, connection_id: uuid.UUID
) -> str:
    """The platform's consent page for this connection; its `state` names the tenant and the
    connection, signed and valid for STATE_MINUTES."""
    connection = await get_connection(session, connection_id)
    state = sign(
        signing_key(settings),
        {
            "t": str(connection.tenant_id),
            "c": str(connection.id),
            "exp": int((datetime.now(UTC) + timedelta(minutes=STATE_MINUTES)).timestamp()),
            "n": secrets.token_urlsafe(8),
        },
    )
    plugin = connector(connection.connector)
    return plugin.authorize_url(
        configuration(vault, connection), redirect_uri=callback_url(settings), state=state
    )


def read_state(settings: Settings, state: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The tenant and connection a genuine, unexpired state names; BadToken otherwise."""
    claims = verify(signing_key(settings), state)
    try:
        if int(claims["exp"]) <= datetime.now(UTC).timestamp():
            raise BadToken("expired")
        return uuid.UUID(claims["t"]), uuid.UUID(claims["c"])
    except (KeyError, ValueError, TypeError) as error:
        raise BadToken(str(error)) from error


async def complete_authorization(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    connection_id: uuid.UUID,
    *,
    code: str,
    params: Mapping[str, str],
) -> Connection:
    """Exchange the platform's code for a grant, seal it, and make the connection active."""
    connection = await get_connection(session, connection_id, lock=True)
    plugin = connector(connection.connector)
    grant = await plugin.exchange_code(
        platforms.client(connection.id, plugin), configuration(vault, connection), code=code, params=params
    )
    _seal_grant(vault, connection, grant)
    connection.authorized_at = datetime.now(UTC)
    connection.status = ConnectionStatus.ACTIVE.value
    await session.flush()
    await audit.record(
        session, actor=f"connector:{plugin.key}", action="connection.authorize", target_type="Connection",
        target_id=connection.id,
    )  # fmt: skip
    return connection


async def connect_with_credentials(
    session: AsyncSession, vault: Vault, platforms: Platforms, connection_id: uuid.UUID
) -> Connection:
    """For connectors whose configuration holds the credentials: check them with the platform
    and make the connection active; what the platform says when it refuses is the user error."""
    try:
        return await complete_authorization(session, vault, platforms, connection_id, code="", params={})
    except (httpx.HTTPError, PlatformError) as error:
        raise InvalidInput(
            Problem("config", "PLATFORM_REFUSED", f"The platform refused the credentials: {error}"[:300])
        ) from None


async def set_enabled(
    session: AsyncSession, connection_id: uuid.UUID, *, enabled: bool, actor: str
) -> Connection:
    """Turn a connection off (nothing is pulled, webhooks are refused) or on again; on again is
    active only if it has a grant."""
    connection = await get_connection(session, connection_id, lock=True)
    if enabled and connection.status == ConnectionStatus.DISABLED:
        connection.status = (
            ConnectionStatus.ACTIVE if connection.grant_sealed is not None else ConnectionStatus.PENDING
        ).value
    elif not enabled:
        connection.status = ConnectionStatus.DISABLED.value
    connection.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="connection.enable" if enabled else "connection.disable",
        target_type="Connection", target_id=connection.id, after={"status": connection.status},
    )  # fmt: skip
    return connection


async def revoke(session: AsyncSession, connection: Connection, reason: str) -> None:
    """The platform no longer accepts the grant: stop until an admin authorizes again."""
    connection.status = ConnectionStatus.REVOKED.value
    connection.updated_at = datetime.now(UTC)
    await session.flush()
    log.warning("connection revoked", connection=str(connection.id), reason=reason[:200])
    await audit.record(
        session, actor=f"connector:{connection.connector}", action="connection.revoked",
        target_type="Connection", target_id=connection.id, after={"reason": reason[:200]},
    )  # fmt: skip


REFRESH_AHEAD = timedelta(minutes=20)
"""Two runs of the job ahead of expiry: an hour-long token (Amazon's) is used for 40 minutes."""


def grant_of(vault: Vault, connection: Connection) -> Grant:
    """The connection's grant, for the connector's use only."""
    assert connection.grant_sealed is not None
    sealed = json.loads(vault.open(connection.grant_sealed, connection.tenant_id, connection.id))
    when = lambda value: datetime.fromisoformat(value) if value else None  # noqa: E731
    return Grant(
        access_token=SecretStr(sealed["access_token"]),
        refresh_token=SecretStr(sealed["refresh_token"]) if sealed["refresh_token"] else None,
        expires_at=when(sealed["expires_at"]),
        refresh_expires_at=when(sealed["refresh_expires_at"]),
        extra=sealed["extra"],
    )


def _seal_grant(vault: Vault, connection: Connection, grant: Grant) -> None:
    sealed = {
        "access_token": grant.access_token.get_secret_value(),
        "refresh_token": grant.refresh_token.get_secret_value() if grant.refresh_token else None,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "refresh_expires_at": grant.refresh_expires_at.isoformat() if grant.refresh_expires_at else None,
        "extra": dict(grant.extra),
    }
    connection.grant_sealed = vault.seal(json.dumps(sealed).encode(), connection.tenant_id, connection.id)
    connection.grant_expires_at = grant.expires_at
    connection.updated_at = datetime.now(UTC)


async def refresh_grant(
    engine: AsyncEngine,
    vault: Vault,
    platforms: Platforms,
    tenant_id: uuid.UUID,
    connection_id: uuid.UUID,
    *,
    refused: Grant | None = None,
    due: datetime | None = None,
) -> bool:
    """Refresh one connection's grant in a transaction of its own, committed at once: some
    platforms (Shopee) take each refresh token once, so the newest must never be lost with a
    larger transaction. The row is locked, so concurrent workers refresh it once: a worker whose
    grant the platform `refused` waits for a refresh under way and takes its grant; the job
    (refreshing what expires before `due`) skips a connection being refreshed, or refreshed since.
    A refusal for good revokes the connection. True when a new grant is there."""
    async with tenant_transaction(engine, tenant_id) as session:
        # A refresh is one platform call: waiting longer than the client's timeouts means trouble.
        await session.execute(text("SET LOCAL lock_timeout = '30s'"))
        connection = await session.scalar(
            select(Connection)
            .where(Connection.id == connection_id, Connection.status == ConnectionStatus.ACTIVE)
            .with_for_update(key_share=True, skip_locked=refused is None)
        )
        if connection is None:
            return False
        current = grant_of(vault, connection)
        if (
            refused is not None
            and current.access_token.get_secret_value() != refused.access_token.get_secret_value()
        ):
            return True  # another worker refreshed it meanwhile
        if due is not None and connection.grant_expires_at is not None and connection.grant_expires_at >= due:
            return False
        plugin = connector(connection.connector)
        try:
            grant = await plugin.refresh(
                platforms.client(connection.id, plugin), configuration(vault, connection), current
            )
        except AuthorizationRevoked as error:
            await revoke(session, connection, str(error))
            return False
        except (httpx.HTTPError, PlatformError) as error:
            log.warning("grant refresh failed", connection=str(connection.id), error=type(error).__name__)
            return False
        _seal_grant(vault, connection, grant)
        await session.flush()
        return True


def buyer_input(record: BuyerRecord) -> BuyerInput:
    """A platform's buyer as the orders domain takes one."""
    return BuyerInput(
        name=record.name, email=record.email, phone=record.phone, buyer_id=record.buyer_id,
        wechat_unionid=record.wechat_unionid, wechat_openid=record.wechat_openid,
    )  # fmt: skip


T = TypeVar("T")


async def call_platform(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    connection: Connection,
    call: Callable[[httpx.AsyncClient, ConnectorConfig, Grant], Awaitable[T]],
) -> T:
    """Call the platform with the connection's grant; an access token refused as expired is
    refreshed (committed on its own) and the call made once more."""
    plugin = connector(connection.connector)
    client, config, grant = (
        platforms.client(connection.id, plugin),
        configuration(vault, connection),
        grant_of(vault, connection),
    )
    try:
        return await call(client, config, grant)
    except TokenExpired:
        await refresh_grant(
            engine_of(session), vault, platforms, connection.tenant_id, connection.id, refused=grant
        )
        await session.refresh(connection)
        if connection.status == ConnectionStatus.REVOKED:
            raise AuthorizationRevoked("the platform refused to refresh the grant") from None
        # Refreshed, or the refresh failed for now and this raises TokenExpired again.
        return await call(client, config, grant_of(vault, connection))


async def refresh_grants(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    *,
    now: datetime | None = None,
    limit: int = 100,
) -> int:
    """Refresh the grants of active connections that expire within REFRESH_AHEAD (the job
    `connections.refresh_grants`), each in its own transaction; a refusal is logged and retried
    at the next run. Returns how many were refreshed."""
    due = (now or datetime.now(UTC)) + REFRESH_AHEAD
    rows = await session.execute(
        select(Connection.tenant_id, Connection.id)
        .where(Connection.status == ConnectionStatus.ACTIVE, Connection.grant_expires_at < due)
        .order_by(Connection.grant_expires_at)
        .limit(limit)
    )
    engine = engine_of(session)
    return sum([await refresh_grant(engine, vault, platforms, t, c, due=due) for t, c in rows.all()])


async def reseal(session: AsyncSession, vault: Vault) -> int:
    """Seal the tenant's connections sealed under an older key under the current one (key
    rotation); returns how many."""
    rows = await session.scalars(
        select(Connection).where(Connection.key_id != vault.key_id).with_for_update(key_share=True)
    )
    count = 0
    for connection in rows:
        connection.secrets = vault.seal(
            vault.open(connection.secrets, connection.tenant_id, connection.id),
            connection.tenant_id,
            connection.id,
        )
        if connection.grant_sealed is not None:
            connection.grant_sealed = vault.seal(
                vault.open(connection.grant_sealed, connection.tenant_id, connection.id),
                connection.tenant_id,
                connection.id,
            )
        connection.key_id = vault.key_id
        count += 1
    await session.flush()
    return count


async def checkpoints_of(
    session: AsyncSession, connection_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Checkpoint]:
    """The orders checkpoint of each connection that has synced."""
    rows = await session.scalars(
        select(Checkpoint).where(
            Checkpoint.connection_id.in_(connection_ids), Checkpoint.resource == "orders"
        )
    )
    return {c.connection_id: c for c in rows}
