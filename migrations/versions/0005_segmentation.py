"""Segmentation scores kept on the profile: RFM, segment, value tier, and when they were computed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
COLUMNS = [
    sa.Column("first_order_at", TIMESTAMP),
    sa.Column("last_order_at", TIMESTAMP),
    sa.Column("recency_days", sa.Integer),
    sa.Column("frequency", sa.Integer),
    sa.Column("monetary", sa.BigInteger),
    sa.Column("lifetime_spend", sa.BigInteger),
    sa.Column("r_score", sa.SmallInteger),
    sa.Column("f_score", sa.SmallInteger),
    sa.Column("m_score", sa.SmallInteger),
    sa.Column("rfm_segment", sa.String(16)),
    sa.Column("value_tier", sa.String(16), nullable=False, server_default="prospect"),
    sa.Column("scored_at", TIMESTAMP),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("customers", column)
    op.create_check_constraint(
        "ck_customers_rfm_segment",
        "customers",
        "rfm_segment IN ('core_loyal', 'potential', 'dormant', 'new', 'churned')",
    )
    op.create_check_constraint(
        "ck_customers_value_tier",
        "customers",
        "value_tier IN ('top', 'high', 'core', 'ordinary', 'prospect')",
    )
    op.create_index("ix_customers_tenant_id_rfm_segment_id", "customers", ["tenant_id", "rfm_segment", "id"])
    op.create_index("ix_customers_tenant_id_value_tier_id", "customers", ["tenant_id", "value_tier", "id"])


def downgrade() -> None:
    op.drop_index("ix_customers_tenant_id_value_tier_id", "customers")
    op.drop_index("ix_customers_tenant_id_rfm_segment_id", "customers")
    op.drop_constraint("ck_customers_value_tier", "customers", type_="check")
    op.drop_constraint("ck_customers_rfm_segment", "customers", type_="check")
    for column in reversed(COLUMNS):
        op.drop_column("customers", column.name)
