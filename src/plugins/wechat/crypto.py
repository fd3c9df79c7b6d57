"""WeChat's message crypto for Official Account pushes (WeChat's "message encryption and
decryption" guide): SHA-1 signatures and AES-256-CBC under the EncodingAESKey.

A signature is the hex SHA-1 of the token, timestamp, nonce (and, in safe mode, the ciphertext)
sorted and joined. The AES key is the 43-character EncodingAESKey base64-decoded with "=" added;
the IV is its first 16 bytes. The plaintext is 16 random bytes, the message's length in 4
bytes (network order), the message and the account's appid, padded PKCS#7-style to a multiple
of 32 bytes (WeChat's block, not AES's 16).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CryptoError(ValueError):
    """A ciphertext that does not decrypt to a message of this account."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 (WeChat's scheme)


def signed(expected: str, *parts: str) -> bool:
    return hmac.compare_digest(signature(*parts), expected)


class MessageCrypto:
    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as error:
            raise ValueError("an EncodingAESKey is 43 characters of base64") from error
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("an EncodingAESKey is 43 characters of base64")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
        self.appid = appid

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        """The base64 ciphertext of a message (a reply, or a push in the stand-in)."""
        body = message.encode()
        plain = (
            (random_prefix or secrets.token_bytes(16))
            + struct.pack(">I", len(body))
            + body
            + self.appid.encode()
        )
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The message; CryptoError when it is not this account's or was tampered with."""
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except binascii.Error as error:
            raise CryptoError("not base64") from error
        if not raw or len(raw) % 16:
            raise CryptoError("not whole AES blocks")
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise CryptoError("too short")
        (length,) = struct.unpack(">I", content[:4])
        message, appid = content[4 : 4 + length], content[4 + length :]
        if len(message) != length or not hmac.compare_digest(appid, self.appid.encode()):
            raise CryptoError("not this account's message")
        try:
            return message.decode()
        except UnicodeDecodeError as error:
            raise CryptoError("not UTF-8") from error
