"""Signed tokens the platform hands out and takes back: survey links, authorization states.

HS256 JWTs (joserfc) under the deployment's `BRANDLOOP_SECRET_KEY` (required in production, the
same on every API process); in development one is generated into the data folder."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from brandloop.settings import Settings, development_secret

ALGORITHMS = ["HS256"]


class BadToken(Exception):
    """Not one of ours: forged, altered or malformed."""


def signing_key(settings: Settings) -> OctKey:
    secret = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return _key(secret, str(settings.data_dir))


@functools.cache
def _key(secret: str | None, data_dir: str) -> OctKey:
    if secret is None:
        secret = development_secret(Path(data_dir), "secret-key", lambda: secrets.token_urlsafe(48))
    return OctKey.import_key(secret.encode())


def sign(key: OctKey, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "HS256"}, claims, key, algorithms=ALGORITHMS)


def verify(key: OctKey, token: str) -> dict[str, Any]:
    """The claims of a genuine token (its expiry is the caller's to check); BadToken otherwise."""
    try:
        return dict(jwt.decode(token, key, algorithms=ALGORITHMS).claims)
    except (JoseError, ValueError, TypeError) as error:
        raise BadToken(str(error)) from error
