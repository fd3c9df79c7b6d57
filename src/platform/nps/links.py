"""Survey links: a signed, expiring token naming the tenant and the invitation.

The token is the respondent's only credential, so it is an HS256 JWT (joserfc) under the
deployment's secret key: forging or altering one byte fails the signature. It carries no customer
data. Expiry is checked from the token and single use from the database (one response per
invitation).
"""

from __future__ import annotations

import functools
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from brandloop.nps.models import Invitation
from brandloop.settings import Settings

ALGORITHMS = ["HS256"]


class BadLink(Exception):
    """The token is not one of ours (forged, altered or malformed)."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    tenant_id: uuid.UUID
    invitation_id: uuid.UUID
    expires_at: datetime


def signing_key(settings: Settings) -> OctKey:
    """The deployment's secret; in development, one kept in the data folder (mode 0600)."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return _key(secret, str(settings.data_dir))


@functools.cache
def _key(secret: str | None, data_dir: str) -> OctKey:
    if secret is not None:
        return OctKey.import_key(secret.encode())
    path = Path(data_dir) / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
    return OctKey.import_key(path.read_text().strip().encode())


def issue(key: OctKey, tenant_id: uuid.UUID, invitation_id: uuid.UUID, expires_at: datetime) -> str:
    claims = {"t": str(tenant_id), "i": str(invitation_id), "exp": int(expires_at.timestamp())}
    return jwt.encode({"alg": "HS256"}, claims, key, algorithms=ALGORITHMS)


def read(key: OctKey, token: str) -> LinkClaims:
    """The claims of a genuine token (expired or not: the caller says which); BadLink otherwise."""
    try:
        claims = jwt.decode(token, key, algorithms=ALGORITHMS).claims
        return LinkClaims(
            tenant_id=uuid.UUID(claims["t"]),
            invitation_id=uuid.UUID(claims["i"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        )
    except (JoseError, ValueError, KeyError, TypeError) as error:
        raise BadLink(str(error)) from error


def link(settings: Settings, invitation: Invitation) -> str:
    """The invitation's survey link, as sent to the customer."""
    token = issue(signing_key(settings), invitation.tenant_id, invitation.id, invitation.expires_at)
    return f"{settings.public_url.rstrip('/')}/surveys/{token}"
