"""The Connector protocol and the normalised records a connector yields.

Plugins never touch the database: they turn a platform's API into these records, and the
platform does the rest (scheduling, checkpoints, retries, idempotent upserts, identity resolution,
loyalty accrual, conflict detection). Money is in minor units of the record's currency; times are
timezone-aware.
"""

from __future__ import annotations

import email.utils
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar, get_args, runtime_checkable

import httpx
from babel.numbers import get_currency_precision
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

T = TypeVar("T")


WEBHOOK_FRESHNESS = 3600
"""Seconds a dated webhook delivery stays acceptable: longer than platforms retry, short enough
that a captured delivery cannot be replayed later."""


class Capability(enum.StrEnum):
    ORDERS = "orders"
    CUSTOMERS = "customers"
    LISTINGS = "listings"
    MESSAGING = "messaging"
    WEBHOOKS = "webhooks"


class Authorization(enum.StrEnum):
    REDIRECT = "redirect"
    """The shop's owner consents on the platform, which sends them back with a code."""
    CREDENTIALS = "credentials"
    """The configuration holds what the platform grants access with (a self-authorized refresh
    token, an app id and secret): `exchange_code` is called with an empty code to check them."""


@dataclass(frozen=True, slots=True)
class Quota:
    """A platform's limit on one operation for one account, where operations differ."""

    operation: str
    rate: float
    """Requests a second, as documented."""
    burst: int = 1
    header: str | None = None
    """A response header restating the account's actual rate (requests a second): paced to it."""


class ConnectorConfig(BaseModel):
    """A connection's settings. Declare secrets as `SecretStr`: the platform encrypts those at rest
    and never returns them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def minor_units(amount: str | float | Decimal, currency: str) -> int:
    """A platform's decimal amount ("12.50", 12.5) in minor units of its currency (ISO 4217
    digits as CLDR has them), rounding half to even."""
    scaled = Decimal(str(amount)).scaleb(get_currency_precision(currency.upper()))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def unmasked(value: str | None) -> str | None:
    """A buyer field as the platform gave it, or None when the platform masked it ("****12")."""
    return value if value and "*" not in value else None


def _base_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("give the host as an http(s) URL")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""A platform host in a configuration (production, sandbox or a local stand-in), without a trailing
slash."""


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """The seconds a response's Retry-After asks for (either form), if it says."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def raise_for_transient(response: httpx.Response, throttled: str) -> None:
    """A 429 as RateLimited (with its Retry-After), a 5xx as httpx's HTTPStatusError; the platform
    retries both. Anything else is the connector's to read."""
    if response.status_code == 429:
        raise RateLimited(throttled, retry_after(response))
    if response.status_code >= 500:
        response.raise_for_status()


def secret_fields(model: type[ConnectorConfig]) -> list[str]:
    """The names of a configuration's secret fields: a `SecretStr`, optional or annotated too."""

    def secret(annotation: object) -> bool:
        return annotation is SecretStr or any(secret(a) for a in get_args(annotation))

    return [name for name, info in model.model_fields.items() if secret(info.annotation)]


@dataclass(frozen=True, slots=True)
class Grant:
    """What the platform's authorization gave: tokens and when the access token expires."""

    access_token: SecretStr
    expires_at: datetime | None = None
    refresh_token: SecretStr | None = None
    refresh_expires_at: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    """Platform values to keep with the grant (a shop id, a seller's region, ...)."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Records changed in [since, until)."""

    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class BuyerRecord:
    buyer_id: str | None = None
    """The platform's own id for the buyer."""
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    wechat_unionid: str | None = None
    wechat_openid: str | None = None


@dataclass(frozen=True, slots=True)
class LineRecord:
    sku: str
    product_name: str
    quantity: int
    unit_price: int
    category: str | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the platform has it now; the same order again is an update (by `updated_at`)."""

    external_id: str
    status: str
    """One of Brandloop's order statuses: pending, paid, shipped, completed, cancelled, refunded,
    partially_refunded."""
    currency: str
    total: int
    placed_at: datetime
    updated_at: datetime
    lines: Sequence[LineRecord] = ()
    buyer: BuyerRecord | None = None
    subtotal: int | None = None
    discount: int = 0
    shipping: int = 0
    tax: int = 0
    refunded: int = 0
    ship_region: str | None = None
    """Where it shipped: ISO 3166-2 (CN-GD) or a country, when the platform says."""
    seller_id: str | None = None
    """The platform's id of the store that sold it (a marketplace with many sellers)."""


@dataclass(frozen=True, slots=True)
class ListingObservation:
    """A listing seen on a channel: who sells which SKU at what price, where and when."""

    sku: str
    seller_id: str
    price: int
    currency: str
    observed_at: datetime
    seller_name: str | None = None
    region: str | None = None
    """ISO 3166-2 code when the platform says."""
    url: str | None = None
    listing_id: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    records: Sequence[T]
    next_cursor: str | None = None
    """Pass it back to get the next page of the same window; None when the window is done."""


class EventKind(enum.StrEnum):
    ORDER = "order"
    """An order changed: the platform pulls the connection's changes soon after."""
    AUTHORIZATION_REVOKED = "authorization_revoked"
    """The shop withdrew its grant: the connection waits for its admin to authorize again."""
    FOLLOWED = "followed"
    """Someone followed the brand's account (payload `follower_id`): they become a customer who
    consented to its messages."""
    UNFOLLOWED = "unfollowed"
    """They stopped following (payload `follower_id`): their consent to its messages is withdrawn."""
    OTHER = "other"
    """Stored, nothing done with it yet."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    key: str
    """Unique per event on the platform: a re-delivery carries the same key."""
    kind: EventKind
    payload: Mapping[str, Any]
    """The platform's event as delivered (its own type name included)."""


class PlatformError(Exception):
    """The platform refused or failed a request; the platform retries later with backoff.
    (httpx's own errors, from `raise_for_status()` or a timeout, are treated the same way.)"""


class RateLimited(PlatformError):
    """The platform asks to slow down; `retry_after` seconds when it says how long."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenExpired(PlatformError):
    """The access token was refused as expired or invalid: the platform refreshes the grant and
    retries once."""


class AuthorizationRevoked(PlatformError):
    """The grant no longer works (revoked by the shop, refresh token used up or expired): the
    connection waits for its admin to authorize again instead of retrying."""


@dataclass(frozen=True, slots=True)
class Follower:
    """Someone who follows the brand's account on the platform."""

    follower_id: str
    following: bool
    buyer: BuyerRecord
    """Their identities on the platform (a WeChat openid, and unionid where the platform gives it)."""
    followed_at: datetime | None = None
    source: str | None = None
    """How they came (a WeChat subscribe scene: a QR code, a search, an article)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message to send to someone through the platform (a survey invitation)."""

    recipient_id: str
    title: str
    body: str
    link: str


class DeliveryRefused(PlatformError):
    """The platform will not deliver to this recipient (they stopped following, they block it):
    not retried."""


@runtime_checkable
class Connector(Protocol):
    """A channel plugin. `client` is an httpx client the platform owns (timeouts, proxies);
    methods for capabilities the connector does not declare may raise NotImplementedError."""

    key: ClassVar[str]
    """Lower-case letters, digits and _: the channel's key in orders and identities."""
    display_name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ConnectorConfig]]
    requests_per_second: ClassVar[float]
    """The platform's documented quota for one shop: the platform paces each connection's
    requests to it."""
    authorization: ClassVar[Authorization]

    def quota(self, request: httpx.Request) -> Quota | None:
        """The request's operation quota on top of `requests_per_second`, where the platform's
        differ per operation (Amazon); None where they do not."""
        ...

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        """Where to send the tenant's admin to grant access."""
        ...

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        """The grant for the code the platform redirected back with (and its other parameters);
        for `Authorization.CREDENTIALS`, the grant the configuration's credentials give."""
        ...

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant) -> Grant: ...

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        """One page of the orders changed in the window."""
        ...

    async def fetch_listings(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[ListingObservation]: ...

    def verify_webhook(
        self, config: ConnectorConfig, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        """Whether the platform signed this delivery over the raw body (a constant-time compare),
        and, where the platform dates it, whether it is fresh (`WEBHOOK_FRESHNESS`). Checked before
        anything is believed; `url` is the address registered with the platform."""
        ...

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]: ...


@runtime_checkable
class PushHandshake(Protocol):
    """For platforms that check a push address before they use it and read the answer to each
    delivery (WeChat)."""

    def acknowledge(self, config: ConnectorConfig, *, url: str, body: bytes) -> str:
        """The plain-text answer to a verified delivery (WeChat: "success", or a reply message)."""
        ...

    def answer_challenge(self, config: ConnectorConfig, *, url: str) -> str | None:
        """The answer to the platform's check of the address (a GET of `url`, query included), or
        None when the platform did not sign it."""
        ...


@runtime_checkable
class FollowerSource(Protocol):
    """For platforms where people follow the brand's account (Capability.CUSTOMERS)."""

    async def fetch_followers(
        self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant, follower_ids: Sequence[str]
    ) -> Sequence[Follower]:
        """What the platform says of these followers now (in as few calls as it allows); an id it
        does not return is taken as no longer following."""
        ...


@runtime_checkable
class MessageSender(Protocol):
    """For platforms the brand can message its followers through (Capability.MESSAGING)."""

    daily_messages: ClassVar[int]
    """How many messages one account may send a day (the platform's quota)."""
    quota_zone: ClassVar[str]
    """The time zone whose midnight starts the platform's quota day (IANA name)."""

    async def send(
        self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant, message: Message
    ) -> str:
        """Send it; the platform's message id. DeliveryRefused when the platform will not."""
        ...
