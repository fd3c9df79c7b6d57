"""Channel conflicts: partners, price policies and their exceptions, listing observations,
conflicts with their evidence and timeline; the tenant's auto-resolve setting.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from brandloop.db.rls import protect_tenant_table
from brandloop.db.session import APP_ROLE

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
OPEN = "status NOT IN ('resolved', 'dismissed')"


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{target}.tenant_id", f"{target}.id"],
        name=f"fk_{table}_{column}_{target}",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.add_column(
        "tenant_settings",
        sa.Column("conflict_auto_resolve_hours", sa.Integer, nullable=False, server_default="72"),
    )
    op.create_table(
        "channel_partners",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("level", sa.String(24), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("seller_id", sa.String(128)),
        sa.Column("authorised", sa.Boolean, nullable=False),
        sa.Column("territories", ARRAY(sa.String(6)), nullable=False, server_default="{}"),
        sa.Column("contacts", JSONB, nullable=False, server_default="[]"),
        sa.Column("violation_level", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_channel_partners"),
        # Listings name their seller by the channel's own id: one partner per seller and channel.
        sa.UniqueConstraint("tenant_id", "channel", "seller_id", name="uq_channel_partners_channel_seller"),
        sa.CheckConstraint(
            "level IN ('brand', 'distributor', 'dealer', 'retailer', 'marketplace_seller')",
            name="ck_channel_partners_level",
        ),
    )
    op.create_table(
        "price_policies",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("digits", sa.SmallInteger, nullable=False),
        sa.Column("min_price", sa.BigInteger, nullable=False),
        sa.Column("valid_from", TIMESTAMP, nullable=False),
        sa.Column("valid_until", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_price_policies"),
        sa.CheckConstraint("min_price > 0", name="ck_price_policies_min_price"),
        sa.CheckConstraint(
            "valid_until IS NULL OR valid_until > valid_from", name="ck_price_policies_validity"
        ),
    )
    op.create_index("ix_price_policies_sku", "price_policies", ["tenant_id", "sku", "valid_from"])
    op.create_table(
        "price_exceptions",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("policy_id", UUID, nullable=False),
        sa.Column("min_price", sa.BigInteger, nullable=False),
        sa.Column("starts_at", TIMESTAMP, nullable=False),
        sa.Column("ends_at", TIMESTAMP, nullable=False),
        sa.Column("partner_ids", ARRAY(UUID), nullable=False, server_default="{}"),
        sa.Column("channels", ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_price_exceptions"),
        _fk("price_exceptions", "policy_id", "price_policies"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_price_exceptions_window"),
    )
    op.create_table(
        "listing_observations",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("seller_id", sa.String(128), nullable=False),
        sa.Column("seller_name", sa.String(200)),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("digits", sa.SmallInteger, nullable=False),
        sa.Column("region", sa.String(6)),
        sa.Column("url", sa.String(2000)),
        sa.Column("listing_id", sa.String(128)),
        sa.Column("observed_at", TIMESTAMP, nullable=False),
        sa.Column("checked_at", TIMESTAMP),
        sa.Column("within_policy", sa.Boolean),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_listing_observations"),
    )
    op.create_index(
        "ix_listing_observations_unchecked",
        "listing_observations",
        ["tenant_id", "id"],
        postgresql_where=sa.text("checked_at IS NULL"),
    )
    op.create_index(
        "ix_listing_observations_seller_sku",
        "listing_observations",
        ["tenant_id", "channel", "seller_id", "sku", "observed_at"],
    )
    op.create_table(
        "conflicts",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("partner_id", UUID, nullable=False),
        sa.Column("sku", sa.String(64)),
        sa.Column("channel", sa.String(32)),
        sa.Column("region", sa.String(6)),
        sa.Column("policy_id", UUID),
        sa.Column("breaches", sa.Integer, nullable=False, server_default="1"),
        sa.Column("worst_gap", sa.Numeric(6, 4), nullable=False, server_default="0"),
        sa.Column("severity_override", sa.String(8)),
        sa.Column("owner", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution_strategy", sa.String(24)),
        sa.Column("resolution", sa.String(2000)),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("last_breach_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_conflicts"),
        _fk("conflicts", "partner_id", "channel_partners", ondelete="RESTRICT"),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'notice_sent', 'escalated', 'resolved', 'dismissed')",
            name="ck_conflicts_status",
        ),
        sa.CheckConstraint("type IN ('horizontal', 'vertical', 'multi_channel')", name="ck_conflicts_type"),
    )
    # Never two open conflicts for one partner, SKU and cause: detection joins the open one.
    op.create_index(
        "uq_conflicts_open",
        "conflicts",
        ["tenant_id", "partner_id", "sku", "cause"],
        unique=True,
        postgresql_where=sa.text(OPEN),
        postgresql_nulls_not_distinct=True,
    )
    op.create_index("ix_conflicts_status", "conflicts", ["tenant_id", "status", "opened_at"])
    op.create_table(
        "conflict_evidence",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("conflict_id", UUID, nullable=False),
        sa.Column("observation_id", UUID),
        sa.Column("price", sa.BigInteger),
        sa.Column("currency", sa.String(3)),
        sa.Column("policy_price", sa.BigInteger),
        sa.Column("policy_currency", sa.String(3)),
        sa.Column("url", sa.String(2000)),
        sa.Column("listing_id", sa.String(128)),
        sa.Column("region", sa.String(6)),
        sa.Column("observed_at", TIMESTAMP, nullable=False),
        sa.Column("notes", sa.String(2000)),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_conflict_evidence"),
        _fk("conflict_evidence", "conflict_id", "conflicts"),
        # An observation is evidence once per conflict, however often detection runs.
        sa.UniqueConstraint(
            "tenant_id", "conflict_id", "observation_id", name="uq_conflict_evidence_observation"
        ),
    )
    op.create_table(
        "conflict_events",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("conflict_id", UUID, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("note", sa.String(4000)),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_conflict_events"),
        _fk("conflict_events", "conflict_id", "conflicts"),
    )
    op.create_index("ix_conflict_events_conflict", "conflict_events", ["tenant_id", "conflict_id", "id"])
    for table in ("channel_partners", "price_policies", "price_exceptions", "conflicts"):
        for statement in protect_tenant_table(table, "SELECT, INSERT, UPDATE"):
            op.execute(statement)
    # Observations, evidence and the timeline are facts: added, never rewritten (but checked).
    for table in ("conflict_evidence", "conflict_events"):
        for statement in protect_tenant_table(table, "SELECT, INSERT"):
            op.execute(statement)
    for statement in protect_tenant_table("listing_observations", "SELECT, INSERT"):
        op.execute(statement)
    op.execute(f"GRANT UPDATE (checked_at, within_policy) ON listing_observations TO {APP_ROLE}")


def downgrade() -> None:
    for table in (
        "conflict_events",
        "conflict_evidence",
        "conflicts",
        "listing_observations",
        "price_exceptions",
        "price_policies",
        "channel_partners",
    ):
        op.drop_table(table)
    op.drop_column("tenant_settings", "conflict_auto_resolve_hours")
