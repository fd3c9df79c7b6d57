"""Secrets at rest: AES-256-GCM (cryptography) under the deployment's encryption key.

Each sealed value is bound to its tenant and connection (associated data), so a ciphertext copied
to another row or tenant does not open. The key's id is stored with the ciphertext, ready for
rotation. In production the key is `BRANDLOOP_ENCRYPTION_KEY` (32 bytes, base64url); in
development one is generated into the data folder.
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

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:16]

    def seal(self, plain: bytes, tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, plain, _bound(tenant_id, row_id))

    def open(self, sealed: bytes, tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
        try:
            return AESGCM(self.key).decrypt(sealed[:NONCE], sealed[NONCE:], _bound(tenant_id, row_id))
        except (InvalidTag, ValueError) as error:
            raise VaultError("sealed value does not open") from error


def _bound(tenant_id: uuid.UUID, row_id: uuid.UUID) -> bytes:
    return tenant_id.bytes + row_id.bytes


def vault(settings: Settings) -> Vault:
    given = settings.encryption_key.get_secret_value() if settings.encryption_key is not None else None
    return _vault(given, str(settings.data_dir))


@functools.cache
def _vault(given: str | None, data_dir: str) -> Vault:
    if given is None:
        given = development_secret(
            Path(data_dir),
            "encryption-key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )
    return Vault(base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)))
