"""Finding connectors: every distribution's entry points in the group `brandloop.connectors`,
built-in plugins included (they are registered the same way)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from brandloop.connectors.sdk import Authorization, Capability, Connector, ConnectorConfig

ENTRY_POINT_GROUP = "brandloop.connectors"
KEY = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


class ConnectorError(Exception):
    """A plugin that cannot be used, with what is wrong with it."""


def discover() -> dict[str, Connector]:
    """Every installed connector by key; ConnectorError names a broken or clashing plugin."""
    found: dict[str, Connector] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as error:  # a plugin's import error is its own: report, do not crash later
            raise ConnectorError(
                f"connector {entry.name!r} ({entry.value}) fails to load: {error}"
            ) from error
        connector = loaded() if isinstance(loaded, type) else loaded
        problem = _problem(connector)
        if problem:
            raise ConnectorError(f"connector {entry.name!r} ({entry.value}): {problem}")
        if connector.key in found:
            raise ConnectorError(f"two connectors use the key {connector.key!r}")
        found[connector.key] = connector
    return found


def _problem(connector: object) -> str | None:
    if not isinstance(connector, Connector):
        return "does not implement the Connector protocol"
    if not KEY.match(connector.key):
        return "its key must be lower-case letters, digits and _ (2-32)"
    if not connector.capabilities or not all(isinstance(c, Capability) for c in connector.capabilities):
        return "declares no capabilities, or unknown ones"
    if not (isinstance(connector.config_model, type) and issubclass(connector.config_model, ConnectorConfig)):
        return "its config_model must subclass ConnectorConfig"
    if not isinstance(getattr(connector, "authorization", None), Authorization):
        return "its authorization must be an Authorization (REDIRECT or CREDENTIALS)"
    rate = connector.requests_per_second
    if not isinstance(rate, int | float) or not 0 < rate <= 1000:
        return "its requests_per_second must be a number above 0 (the platform's quota per shop)"
    return None
