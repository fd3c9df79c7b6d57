"""Survey links: a signed, expiring token naming the tenant and the invitation.

The token is the respondent's only credential, so it is an HS256 JWT (joserfc) under the
deployment's secret key: forging or altering one byte fails the signature. It carries no customer
data. Expiry is checked from the token and single use from the database (one response per
invitation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc.jwk import OctKey

from brandloop.nps.models import Invitation
from brandloop.settings import Settings
from brandloop.signing import BadToken, sign, signing_key, verify


class BadLink(Exception):
    """The token is not one of ours (forged, altered or malformed)."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    tenant_id: uuid.UUID
    invitation_id: uuid.UUID
    expires_at: datetime


def issue(key: OctKey, tenant_id: uuid.UUID, invitation_id: uuid.UUID, expires_at: datetime) -> str:
    return sign(key, {"t": str(tenant_id), "i": str(invitation_id), "exp": int(expires_at.timestamp())})


def read(key: OctKey, token: str) -> LinkClaims:
    """The claims of a genuine token (expired or not: the caller says which); BadLink otherwise."""
    try:
        claims = verify(key, token)
        return LinkClaims(
            tenant_id=uuid.UUID(claims["t"]),
            invitation_id=uuid.UUID(claims["i"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        )
    except (BadToken, ValueError, KeyError, TypeError) as error:
        raise BadLink(str(error)) from error


def link(settings: Settings, invitation: Invitation) -> str:
    """The invitation's survey link, as sent to the customer."""
    token = issue(signing_key(settings), invitation.tenant_id, invitation.id, invitation.expires_at)
    return f"{settings.public_url.rstrip('/')}/surveys/{token}"
