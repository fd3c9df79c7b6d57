"""Orders with lines, customer identities, tenant settings and exchange rates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from brandloop.db.rls import protect_tenant_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
MONEY = sa.BigInteger  # minor units of the row's currency


def _tenant_id() -> sa.Column:
    return sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False)


def upgrade() -> None:
    # Each foreign key check costs a lookup per inserted row: a child table's tenant_id is already
    # checked through its parent, so its own key to tenants is redundant.
    op.drop_constraint("fk_customer_tags_tenant_id_tenants", "customer_tags", type_="foreignkey")

    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("reporting_currency", sa.String(3), nullable=False, server_default="CNY"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("dormant_after_days", sa.Integer, nullable=False, server_default="90"),
        sa.Column("churned_after_days", sa.Integer, nullable=False, server_default="180"),
        sa.Column("rfm_window_days", sa.Integer, nullable=False, server_default="365"),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "0 < dormant_after_days AND dormant_after_days < churned_after_days",
            name="ck_tenant_settings_stages",
        ),
        sa.CheckConstraint("rfm_window_days > 0", name="ck_tenant_settings_rfm_window"),
    )
    for statement in protect_tenant_table("tenant_settings", "SELECT, INSERT, UPDATE"):
        op.execute(statement)

    op.create_table(
        "exchange_rates",
        _tenant_id(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("rate", sa.Numeric(24, 12), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "currency", "day"),
        sa.CheckConstraint("rate > 0", name="ck_exchange_rates_positive"),
    )
    for statement in protect_tenant_table("exchange_rates", "SELECT, INSERT, UPDATE"):
        op.execute(statement)

    op.create_table(
        "customer_identities",
        # tenant_id needs no foreign key of its own: the one to customers carries it.
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(254), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "kind", "value", name="uq_customer_identities_tenant_id_kind_value"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_customer_identities_tenant_id_customer_id", "customer_identities", ["tenant_id", "customer_id"]
    )
    for statement in protect_tenant_table("customer_identities"):
        op.execute(statement)
    # Existing contact fields become identities. Needs a role that RLS does not filter (the
    # migration role is a superuser or has BYPASSRLS; see docs/operations.md).
    op.execute(
        """
        INSERT INTO customer_identities (tenant_id, id, customer_id, kind, value, source)
        SELECT tenant_id, gen_random_uuid(), id, 'email', email, 'manual' FROM customers WHERE email IS NOT NULL
        UNION ALL
        SELECT tenant_id, gen_random_uuid(), id, 'phone', phone, 'manual' FROM customers WHERE phone IS NOT NULL
        ON CONFLICT DO NOTHING
        """
    )

    op.create_table(
        "identity_blocklist",
        _tenant_id(),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(254), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "value"),
    )
    for statement in protect_tenant_table("identity_blocklist", "SELECT, INSERT, DELETE"):
        op.execute(statement)

    op.create_table(
        "orders",
        _tenant_id(),
        sa.Column("id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("customer_id", UUID),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal", MONEY, nullable=False),
        sa.Column("discount", MONEY, nullable=False, server_default="0"),
        sa.Column("shipping", MONEY, nullable=False, server_default="0"),
        sa.Column("tax", MONEY, nullable=False, server_default="0"),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("refunded", MONEY, nullable=False, server_default="0"),
        sa.Column("placed_at", TIMESTAMP, nullable=False),
        sa.Column("source_updated_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint(
            "tenant_id", "channel", "external_id", name="uq_orders_tenant_id_channel_external_id"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'shipped', 'completed', 'cancelled', 'refunded', 'partially_refunded')",
            name="ck_orders_status",
        ),
        sa.CheckConstraint(
            "subtotal >= 0 AND discount >= 0 AND shipping >= 0 AND tax >= 0 AND total >= 0"
            " AND refunded >= 0 AND refunded <= total",
            name="ck_orders_amounts",
        ),
    )
    # A deleted customer leaves its orders, unattached: SET NULL on the customer column only.
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT fk_orders_tenant_id_customer_id_customers "
        "FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) "
        "ON DELETE SET NULL (customer_id)"
    )
    op.create_index(
        "ix_orders_tenant_id_customer_id_placed_at", "orders", ["tenant_id", "customer_id", "placed_at"]
    )
    op.create_index("ix_orders_tenant_id_placed_at", "orders", ["tenant_id", "placed_at"])
    for statement in protect_tenant_table("orders"):
        op.execute(statement)

    op.create_table(
        "order_lines",
        sa.Column("tenant_id", UUID, nullable=False),  # covered by the foreign key to orders
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("line_no", sa.SmallInteger, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("product_name", sa.String(300), nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "line_no"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"
        ),
        sa.CheckConstraint("quantity > 0 AND unit_price >= 0", name="ck_order_lines_amounts"),
    )
    for statement in protect_tenant_table("order_lines", "SELECT, INSERT, DELETE"):
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "order_lines",
        "orders",
        "identity_blocklist",
        "customer_identities",
        "exchange_rates",
        "tenant_settings",
    ):
        op.drop_table(table)
    op.create_foreign_key(
        "fk_customer_tags_tenant_id_tenants", "customer_tags", "tenants", ["tenant_id"], ["id"]
    )
