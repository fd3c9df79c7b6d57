"""API keys: long random secrets, shown once, stored as a SHA-256 digest, found by prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.auth.jwt import JwtVerifier
from brandloop.auth.models import ApiKey
from brandloop.auth.permissions import Principal, Role
from brandloop.db.base import keyset_page
from brandloop.db.session import current_tenant, driver, enter_tenant, entered_tenant
from brandloop.errors import InvalidInput, Problem, Unauthenticated
from brandloop.tenancy.service import active_tenant

KEY_MARK = "blk"
MAX_NAME_LENGTH = 100
# Writing last_used_at on every request would turn reads into writes; a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    api_key: ApiKey
    secret: str
    """The whole key; it exists only here and is never stored or shown again."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_MARK + "_")


async def create_api_key(
    session: AsyncSession, *, name: str, role: Role, actor: str, expires_at: datetime | None = None
) -> IssuedKey:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            Problem(
                "name",
                "INVALID_LENGTH",
                f"Give the key a name of 1 to {MAX_NAME_LENGTH} characters.",
            )
        )
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput(Problem("expiresAt", "IN_THE_PAST", "The expiry must be in the future."))
    prefix = secrets.token_hex(6)
    secret = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        tenant_id=current_tenant(session),
        prefix=prefix,
        digest=_digest(secret),
        name=name,
        role=role.value,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)
    await audit.record(
        session,
        actor=actor,
        action="api_key.create",
        target_type="ApiKey",
        target_id=key.id,
        after={
            "name": name,
            "role": role.value,
            "prefix": prefix,
            "expiresAt": expires_at.isoformat() if expires_at else None,
        },
    )
    return IssuedKey(key, secret)


async def list_api_keys(session: AsyncSession, *, first: int, after: uuid.UUID | None = None) -> list[ApiKey]:
    return list((await session.scalars(keyset_page(select(ApiKey), ApiKey, first, after))).all())


async def count_api_keys(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(ApiKey)) or 0


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, (current_tenant(session), key_id))


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID, *, actor: str) -> ApiKey:
    return await _revoke(session, await get_api_key(session, key_id), actor)


async def revoke_api_key_by_prefix(session: AsyncSession, prefix: str, *, actor: str) -> ApiKey:
    return await _revoke(session, await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix)), actor)


async def _revoke(session: AsyncSession, key: ApiKey | None, actor: str) -> ApiKey:
    if key is None:
        raise InvalidInput(Problem("id", "NOT_FOUND", "No API key of this tenant matches."))
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await audit.record(
            session,
            actor=actor,
            action="api_key.revoke",
            target_type="ApiKey",
            target_id=key.id,
            after={"prefix": key.prefix},
        )
    return key


# Checks nothing: it reads the key (with its tenant's status) and enters the key's tenant; the
# digest is compared here, in constant time. See migration 0008.
_ENTER_WITH_KEY = text("SELECT * FROM brandloop_enter_with_api_key(:prefix)")
_TOUCH = str(
    update(ApiKey)
    .where(ApiKey.id == bindparam("key_id"))
    .values(last_used_at=bindparam("at"))
    .compile(dialect=asyncpg_dialect())
)


async def authenticate_api_key(session: AsyncSession, credential: str) -> Principal:
    """Find the key by its prefix, check its secret, and enter its tenant: one statement."""
    parts = credential.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK:
        raise Unauthenticated("The API key is malformed. Use the whole key as it was shown once.")
    prefix = parts[1]
    key = (await session.execute(_ENTER_WITH_KEY, {"prefix": prefix})).mappings().first()
    if key is None or not hmac.compare_digest(key["digest"], _digest(credential)):
        raise Unauthenticated("The API key is not valid.")
    now = datetime.now(UTC)
    if key["revoked_at"] is not None:
        raise Unauthenticated("The API key has been revoked. Ask an admin for a new one.")
    if key["expires_at"] is not None and key["expires_at"] <= now:
        raise Unauthenticated("The API key has expired. Ask an admin for a new one.")
    if key["tenant_status"] != "active":
        raise Unauthenticated("This tenant does not exist or is suspended.")
    entered_tenant(session, key["tenant_id"])
    if key["last_used_at"] is None or key["last_used_at"] < now - LAST_USED_PRECISION:
        await (await driver(session)).execute(_TOUCH, now, key["id"])
    return Principal(tenant_id=key["tenant_id"], role=Role(key["role"]), subject=f"api_key:{prefix}")


async def authenticate(session: AsyncSession, credential: str, verifier: JwtVerifier) -> Principal:
    """Who the bearer credential names; enters its tenant in the session, which must be active."""
    if looks_like_api_key(credential):
        return await authenticate_api_key(session, credential)
    principal = await verifier.verify(credential)
    await enter_tenant(session, principal.tenant_id)
    await active_tenant(session)
    return principal
