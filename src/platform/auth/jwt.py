"""Bearer JWTs: from the tenant's identity provider (JWKS), or the development issuer.

Signatures and claims are checked by joserfc, the JOSE library of the authlib project (authlib's
own `authlib.jose` is deprecated in its favour).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from brandloop.auth.permissions import Principal, Role
from brandloop.errors import Unauthenticated
from brandloop.settings import Settings, development_secret

DEV_ISSUER = "brandloop-dev"
ASYMMETRIC_PREFIXES = ("RS", "PS", "ES", "EdDSA")
LEEWAY_SECONDS = 30
# An unknown kid triggers a refetch at most this often, so forged kids cannot hammer the IdP.
MIN_REFRESH_INTERVAL = 30.0


class DevTokenIssuer:
    """Signs development tokens with a P-256 key kept in the data folder (mode 0600)."""

    def __init__(self, data_dir: Path) -> None:
        stored = development_secret(
            data_dir,
            "dev-signing-key.json",
            lambda: json.dumps(
                ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex}).as_dict(private=True)
            ),
        )
        self._key = ECKey.import_key(json.loads(stored))

    @property
    def public_keys(self) -> KeySet:
        return KeySet([ECKey.import_key(self._key.as_dict(private=False))])

    def issue(
        self, settings: Settings, *, tenant_id: uuid.UUID, role: Role, subject: str, ttl: int = 3600
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": settings.jwt_audience,
            "sub": subject,
            "iat": now,
            "exp": now + ttl,
            settings.jwt_tenant_claim: str(tenant_id),
            settings.jwt_role_claim: role.value,
        }
        header = {"alg": "ES256", "kid": self._key.kid}
        return jwt.encode(header, claims, self._key)


class JwksCache:
    """The identity provider's keys, fetched once and refetched when an unknown kid shows up."""

    def __init__(self, url: str, max_age: float, timeout: float) -> None:
        self._url = url
        self._max_age = max_age
        self._timeout = timeout
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._unknown_kid_at = -MIN_REFRESH_INTERVAL
        self._lock = asyncio.Lock()

    async def keys(self, kid: str | None) -> KeySet:
        now = time.monotonic()
        keys = self._keys
        if keys is not None and now - self._fetched_at < self._max_age:
            if kid is None or any(k.kid == kid for k in keys.keys):
                return keys
            if now - self._unknown_kid_at < MIN_REFRESH_INTERVAL:
                return keys  # refetched for an unknown kid just now: this one is forged or stale
            self._unknown_kid_at = now
        async with self._lock:
            if self._keys is keys:  # nobody refreshed while we waited for the lock
                self._keys = await self._fetch()
                self._fetched_at = time.monotonic()
        assert self._keys is not None
        return self._keys

    async def _fetch(self) -> KeySet:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self._url)
                response.raise_for_status()
                return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as error:
            if self._keys is not None:
                return self._keys  # keep serving with the keys we had
            raise Unauthenticated(
                "The identity provider's keys could not be fetched; try again shortly."
            ) from error


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        algorithms = list(settings.jwt_algorithms)
        refused = [a for a in algorithms if not a.startswith(ASYMMETRIC_PREFIXES)]
        if refused:
            raise ValueError(f"only asymmetric JWT algorithms are allowed, not {refused}")
        self._settings = settings
        self._algorithms = algorithms
        self._jwks = (
            JwksCache(settings.jwt_jwks_url, settings.jwks_cache_seconds, settings.jwks_timeout_seconds)
            if settings.jwt_jwks_url and settings.jwt_issuer
            else None
        )
        self._dev = DevTokenIssuer(settings.data_dir) if settings.dev_tokens_enabled else None

    async def verify(self, token: str) -> Principal:
        settings = self._settings
        try:
            unverified = jws.extract_compact(token.encode())
            claims: dict[str, Any] = json.loads(unverified.payload)
        except (JoseError, ValueError) as error:
            raise Unauthenticated("The bearer token is neither an API key nor a JWT.") from error
        issuer = claims.get("iss")
        if self._dev is not None and issuer == DEV_ISSUER:
            keys, algorithms = self._dev.public_keys, ["ES256"]
        elif self._jwks is not None and issuer == settings.jwt_issuer:
            keys, algorithms = (
                await self._jwks.keys(unverified.headers().get("kid")),
                self._algorithms,
            )
        else:
            raise Unauthenticated(f"Tokens from issuer {issuer!r} are not accepted here.")
        try:
            verified = jwt.decode(token, keys, algorithms=algorithms)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": settings.jwt_audience},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(verified.claims)
        except JoseError as error:
            raise Unauthenticated(f"The JWT was refused: {error.description or error.error}.") from error
        return _principal(verified.claims, settings)


def _principal(claims: dict[str, Any], settings: Settings) -> Principal:
    try:
        tenant_id = uuid.UUID(str(claims[settings.jwt_tenant_claim]))
        role = Role(claims[settings.jwt_role_claim])
    except (KeyError, ValueError) as error:
        raise Unauthenticated(
            f"The JWT must carry a tenant id in {settings.jwt_tenant_claim!r} and a role "
            f"({', '.join(r.value for r in Role)}) in {settings.jwt_role_claim!r}."
        ) from error
    return Principal(tenant_id=tenant_id, role=role, subject=str(claims["sub"]))
