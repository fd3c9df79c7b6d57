"""Secrets at rest: AES-256-GCM (cryptography) under the deployment's encryption key.

Each sealed value is bound to its tenant and connection (associated data), so a ciphertext copied
to another row or tenant does not open. In production the key is `BRANDLOOP_ENCRYPTION_KEY`
(32 bytes, base64url); in development one is generated into the data folder.

Rotation: the new key becomes `BRANDLOOP_ENCRYPTION_KEY` and the old one moves to
`BRANDLOOP_PREVIOUS_ENCRYPTION_KEYS`; values open under either (GCM's tag says which), new values
are sealed under the new key, and `brandloop connections reseal` seals every connection under it
(`key_id` shows which are left), after which the old key can go.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from brandloop.settings import Settings, development_secret

NONCE = 12


class VaultError(Exception):
    """A sealed value that does not open with this key for this row."""


@dataclass(frozen=True, slots=True)
class Vault:
    key: bytes
    """Seals everything new."""
    previous: tuple[bytes, ...] = ()
    """Still open what they sealed, until `reseal` has moved it to `key`."""

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:16]

    def seal(self, plain: bytes, tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, plain, _bound(tenant_id, row_id))

    def open(self, sealed: bytes, tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        for key in (self.key, *self.previous):
            try:
                return AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], _bound(tenant_id, row_id))
            except (InvalidTag, ValueError):
                continue
        raise VaultError("sealed value does not open")


def _bound(tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
    return tenant_id.bytes + row_id.bytes


def vault(settings: Settings) -> Vault:
    given = settings.encryption_key.get_secret_value() if settings.encryption_key is not None else None
    previous = tuple(k.get_secret_value() for k in settings.previous_encryption_keys)
    return _vault(given, previous, str(settings.data_dir))


@functools.cache
def _vault(given: str | None, previous: tuple[str, ...], data_dir: str) -> Vault:
    if given is None:
        given = development_secret(
            Path(data_dir),
            "encryption-key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )
    return Vault(_decoded(given), tuple(_decoded(k) for k in previous))


def _decoded(key: str) -> bytes:
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
