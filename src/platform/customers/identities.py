"""Identities: the (kind, value) pairs that say who a buyer is, and the rules for trusting them.

Matching is deterministic: an incoming buyer joins the profile that already holds one of its
identities, tried in PRIORITY order. The guards against wrong merges live here too: values that
never match (BUILT_IN blocks and the tenant's list), how many values of a kind one profile may
hold (LIMITS), and kinds of which a person has exactly one (a profile holding another value of
such a kind is a different person).
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import NamedTuple

import phonenumbers

from brandloop.customers.service import normalise_email, normalise_phone
from brandloop.errors import InvalidInput, Problem

MAX_VALUE_LENGTH = 254


class IdentityKind(enum.StrEnum):
    WECHAT_UNIONID = "wechat_unionid"
    EMAIL = "email"
    PHONE = "phone"
    SHOPEE_BUYER = "shopee_buyer"
    TIKTOK_BUYER = "tiktok_buyer"
    AMAZON_BUYER = "amazon_buyer"
    WECHAT_OPENID = "wechat_openid"
    EXTERNAL = "external"


# Strongest first: a unionid is one person across a brand's WeChat apps; an email or phone is
# usually one person; a marketplace buyer id is one account on one channel.
PRIORITY = list(IdentityKind)

LIMITS = {
    IdentityKind.WECHAT_UNIONID: 1,
    IdentityKind.EMAIL: 5,
    IdentityKind.PHONE: 5,
    IdentityKind.SHOPEE_BUYER: 5,
    IdentityKind.TIKTOK_BUYER: 5,
    IdentityKind.AMAZON_BUYER: 5,
    IdentityKind.WECHAT_OPENID: 10,
    IdentityKind.EXTERNAL: 10,
}
"""At most this many values of a kind on one profile; a kind limited to 1 is unique per person."""

# The buyer-id kind of each channel; other channels' ids are `external` values `channel:id`.
CHANNEL_BUYER_KIND = {
    "shopee": IdentityKind.SHOPEE_BUYER,
    "tiktok": IdentityKind.TIKTOK_BUYER,
    "amazon": IdentityKind.AMAZON_BUYER,
    "wechat": IdentityKind.WECHAT_OPENID,
}

_COUNTING_UP = "12345678901234567890"
_COUNTING_DOWN = "98765432109876543210"
_PLACEHOLDER_WORDS = {"", "0", "null", "none", "n/a", "na", "unknown", "test", "-", "anonymous"}
_BLOCKED_EMAIL = re.compile(
    r"(\*)"  # masked by the platform: j***@gmail.com
    r"|^(no-?reply|noemail|no-email|none|test|null|unknown)@"
    r"|@example\.(com|org|net)$"
    r"|@marketplace\.amazon\.[a-z.]+$"  # Amazon's relay: an amazon_buyer identity, not an email
    r"|@privaterelay\.appleid\.com$"
)


class Identity(NamedTuple):
    kind: IdentityKind
    value: str


def normalise(kind: IdentityKind, raw: str, field: str = "identities") -> Identity:
    """The canonical form of a value, so that one person's value always compares equal."""
    raw = raw.strip()
    if kind is IdentityKind.EMAIL:
        return Identity(kind, normalise_email(raw, field))
    if kind is IdentityKind.PHONE:
        return Identity(kind, normalise_phone(raw, field))
    if not raw or len(raw) > MAX_VALUE_LENGTH or any(c.isspace() for c in raw):
        raise InvalidInput(
            Problem(
                field, "INVALID_IDENTITY", f"A {kind.value} is 1 to {MAX_VALUE_LENGTH} characters, no spaces."
            )
        )
    if kind is IdentityKind.EXTERNAL and ":" not in raw:
        raise InvalidInput(
            Problem(field, "INVALID_IDENTITY", "An external id is namespaced by its channel: `channel:id`.")
        )
    return Identity(kind, raw)


def is_placeholder(identity: Identity) -> bool:
    """Values that look like identities but name nobody in particular (built-in rules)."""
    value = identity.value.lower()
    if value in _PLACEHOLDER_WORDS:
        return True
    if identity.kind is IdentityKind.EMAIL:
        return bool(_BLOCKED_EMAIL.search(value))
    if identity.kind is IdentityKind.PHONE:
        national = str(phonenumbers.parse(identity.value).national_number)
        # 138 0000 0000, 139 8888 8888, 123456789: numbers people type when they will not give theirs.
        return len(set(national[-8:])) == 1 or national in _COUNTING_UP or national in _COUNTING_DOWN
    return set(value) == {"0"}


def identity_digest(kind: str, value: str) -> bytes:
    """What is kept of an erased person's identity: enough to recognise it, not to read it."""
    return hashlib.sha256(f"{kind}\x00{value}".encode()).digest()
