"""Roles and what each may do. Every query and mutation names the permission it needs."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MARKETER = "marketer"
    ANALYST = "analyst"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    TENANT_READ = "tenant:read"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    CUSTOMERS_PRIVACY = "customers:privacy"
    """Export and erase a person's data."""
    API_KEYS_MANAGE = "api_keys:manage"
    SETTINGS_MANAGE = "settings:manage"
    AUDIT_READ = "audit:read"
    LOYALTY_READ = "loyalty:read"
    LOYALTY_WRITE = "loyalty:write"
    """Enrol customers, award event points, redeem rewards."""
    LOYALTY_MANAGE = "loyalty:manage"
    """Programs, rules, rewards, adjustments, the ledger check."""
    SURVEYS_READ = "surveys:read"
    SURVEYS_WRITE = "surveys:write"
    """Surveys, invitations, follow-up tasks."""
    CONFLICTS_READ = "conflicts:read"
    CONFLICTS_WRITE = "conflicts:write"
    """Work conflicts (status, notes, owner), record listings, run detection."""
    CONFLICTS_MANAGE = "conflicts:manage"
    """Channel partners, price policies and promotions."""
    KPIS_READ = "kpis:read"
    KPIS_WRITE = "kpis:write"
    """Marketing spend, targets, dashboards."""


_READ = {
    Permission.TENANT_READ,
    Permission.CUSTOMERS_READ,
    Permission.ORDERS_READ,
    Permission.LOYALTY_READ,
    Permission.SURVEYS_READ,
    Permission.CONFLICTS_READ,
    Permission.KPIS_READ,
}
_WRITE = _READ | {
    Permission.CUSTOMERS_WRITE,
    Permission.ORDERS_WRITE,
    Permission.LOYALTY_WRITE,
    Permission.SURVEYS_WRITE,
    Permission.CONFLICTS_WRITE,
    Permission.KPIS_WRITE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_READ),
    Role.ANALYST: frozenset(_READ),
    Role.MARKETER: frozenset(_WRITE),
    Role.ADMIN: frozenset(
        _WRITE
        | {
            Permission.CUSTOMERS_PRIVACY,
            Permission.API_KEYS_MANAGE,
            Permission.SETTINGS_MANAGE,
            Permission.AUDIT_READ,
            Permission.LOYALTY_MANAGE,
            Permission.CONFLICTS_MANAGE,
        }
    ),
    Role.OWNER: frozenset(Permission),
}

# Higher ranks may hand out keys of their rank or below, never above.
ROLE_RANK = {Role.VIEWER: 0, Role.ANALYST: 1, Role.MARKETER: 2, Role.ADMIN: 3, Role.OWNER: 4}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    tenant_id: uuid.UUID
    role: Role
    subject: str
    """`api_key:<prefix>` or the JWT's `sub`: for logs, never a secret."""

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def may_grant(self, role: Role) -> bool:
        return ROLE_RANK[role] <= ROLE_RANK[self.role]
