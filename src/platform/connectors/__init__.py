"""The connector SDK: what a channel plugin implements and what it hands back.

A plugin is a package that registers a `Connector` under the entry-point group
`brandloop.connectors` and imports nothing of Brandloop but this package. docs/connectors.md is
the author's guide.
"""

from brandloop.connectors.registry import ENTRY_POINT_GROUP, ConnectorError, discover
from brandloop.connectors.sdk import (
    WEBHOOK_FRESHNESS,
    Authorization,
    AuthorizationRevoked,
    BaseUrl,
    BuyerRecord,
    Capability,
    Connector,
    ConnectorConfig,
    EventKind,
    Grant,
    LineRecord,
    ListingObservation,
    OrderRecord,
    Page,
    PlatformError,
    Quota,
    RateLimited,
    TimeWindow,
    TokenExpired,
    WebhookEvent,
    minor_units,
    raise_for_transient,
    retry_after,
    secret_fields,
    unmasked,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "WEBHOOK_FRESHNESS",
    "Authorization",
    "AuthorizationRevoked",
    "BaseUrl",
    "BuyerRecord",
    "Capability",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "EventKind",
    "Grant",
    "LineRecord",
    "ListingObservation",
    "OrderRecord",
    "Page",
    "PlatformError",
    "Quota",
    "RateLimited",
    "TimeWindow",
    "TokenExpired",
    "WebhookEvent",
    "discover",
    "minor_units",
    "raise_for_transient",
    "retry_after",
    "secret_fields",
    "unmasked",
]
