"""KPIs, the rest of the catalogue: region and loyalty membership on customer-days, invitations on
survey-days, members per tier by day, when a follow-up task was first acted on, the tenant's gross
margin (CLV), and targets and widget breakdowns by any dimension, not only channel.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from brandloop.db.rls import protect_tenant_table

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


@contextmanager
def every_tenant(table: str) -> Iterator[None]:
    """Rewrite rows of every tenant: the owner running migrations is subject to the forced policy."""
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    yield
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.add_column("tenant_settings", sa.Column("gross_margin", sa.Numeric(5, 4)))
    op.create_check_constraint(
        op.f("ck_tenant_settings_gross_margin"), "tenant_settings", "gross_margin > 0 AND gross_margin <= 1"
    )
    # Region ('' when unknown) joins the key: a buyer's orders of a day may ship to two regions.
    op.add_column("kpi_customer_days", sa.Column("region", sa.String(6), nullable=False, server_default=""))
    op.add_column(
        "kpi_customer_days", sa.Column("member", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.drop_constraint("pk_kpi_customer_days", "kpi_customer_days")
    op.create_primary_key(
        "pk_kpi_customer_days", "kpi_customer_days", ["tenant_id", "day", "channel", "region", "customer_id"]
    )
    for column in ("invited", "answered"):
        op.add_column("kpi_survey_days", sa.Column(column, sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "kpi_tier_days",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        # The nil id stands for "enrolled, no tier yet".
        sa.Column("tier_id", UUID, nullable=False),
        sa.Column("net", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "tier_id", name="pk_kpi_tier_days"),
    )
    for statement in protect_tenant_table("kpi_tier_days"):
        op.execute(statement)
    # ...rebuilt from the enrolments and tier changes of a range of days.
    op.create_index("ix_loyalty_accounts_enrolled", "loyalty_accounts", ["tenant_id", "enrolled_at"])
    op.create_index("ix_loyalty_tier_changes_changed", "loyalty_tier_changes", ["tenant_id", "changed_at"])
    # Roll-ups of invitations by the day they were sent, refreshed when one is answered.
    op.create_index("ix_nps_invitations_created", "nps_invitations", ["tenant_id", "created_at"])
    op.create_index("ix_nps_invitations_responded", "nps_invitations", ["tenant_id", "responded_at"])
    # On-time follow-up: when a task first left "open"; the KPI reads tasks by due time.
    op.add_column("nps_tasks", sa.Column("followed_up_at", sa.DateTime(timezone=True)))
    op.create_index("ix_nps_tasks_due", "nps_tasks", ["tenant_id", "due_at"])
    with every_tenant("nps_tasks"):
        # Before this column the first note, or the resolution, is the best record of it.
        op.execute(
            """UPDATE nps_tasks SET followed_up_at = least((notes -> 0 ->> 'at')::timestamptz, resolved_at)
                WHERE status <> 'open'"""
        )
    op.add_column("kpi_targets", sa.Column("dimension", sa.String(16)))
    op.alter_column("kpi_targets", "channel", new_column_name="dimension_value", type_=sa.String(64))
    with every_tenant("kpi_targets"):
        op.execute("UPDATE kpi_targets SET dimension = 'channel' WHERE dimension_value IS NOT NULL")
    op.create_check_constraint(
        op.f("ck_kpi_targets_dimension"), "kpi_targets", "(dimension IS NULL) = (dimension_value IS NULL)"
    )
    with every_tenant("dashboards"):
        op.execute(_BREAKDOWNS.format(yes="'\"channel\"'::jsonb", no="'null'::jsonb", test="= 'true'"))


# A widget's breakdown was true/false (by channel or not); it now names its dimension.
_BREAKDOWNS = """
    UPDATE dashboards SET widgets = (
      SELECT jsonb_agg(jsonb_set(w, '{{breakdown}}',
                       CASE WHEN w ->> 'breakdown' {test} THEN {yes} ELSE {no} END) ORDER BY n)
        FROM jsonb_array_elements(widgets) WITH ORDINALITY AS e(w, n))
"""


def downgrade() -> None:
    with every_tenant("dashboards"):
        op.execute(_BREAKDOWNS.format(yes="'true'::jsonb", no="'false'::jsonb", test="= 'channel'"))
    with every_tenant("kpi_targets"):
        op.execute("DELETE FROM kpi_targets WHERE dimension <> 'channel'")
    op.drop_constraint("ck_kpi_targets_dimension", "kpi_targets")
    op.alter_column("kpi_targets", "dimension_value", new_column_name="channel", type_=sa.String(32))
    op.drop_column("kpi_targets", "dimension")
    op.drop_index("ix_nps_tasks_due", "nps_tasks")
    op.drop_column("nps_tasks", "followed_up_at")
    op.drop_index("ix_nps_invitations_responded", "nps_invitations")
    op.drop_index("ix_nps_invitations_created", "nps_invitations")
    op.drop_index("ix_loyalty_tier_changes_changed", "loyalty_tier_changes")
    op.drop_index("ix_loyalty_accounts_enrolled", "loyalty_accounts")
    op.drop_table("kpi_tier_days")
    for column in ("answered", "invited"):
        op.drop_column("kpi_survey_days", column)
    # Rows that differ only by region fold back into one.
    op.drop_constraint("pk_kpi_customer_days", "kpi_customer_days")
    with every_tenant("kpi_customer_days"):
        op.execute(
            """
            CREATE TEMPORARY TABLE folded ON COMMIT DROP AS
            SELECT tenant_id, day, channel, customer_id, sum(orders)::int AS orders, sum(gmv)::bigint AS gmv,
                   sum(unconverted)::int AS unconverted, bool_or(first_day) AS first_day
              FROM kpi_customer_days GROUP BY 1, 2, 3, 4
            """
        )
        op.execute("DELETE FROM kpi_customer_days")
        op.execute(
            """INSERT INTO kpi_customer_days (tenant_id, day, channel, customer_id, orders, gmv, unconverted,
                                              first_day, region)
               SELECT *, '' FROM folded"""
        )
    op.drop_column("kpi_customer_days", "member")
    op.drop_column("kpi_customer_days", "region")
    op.create_primary_key(
        "pk_kpi_customer_days", "kpi_customer_days", ["tenant_id", "day", "channel", "customer_id"]
    )
    op.drop_constraint("ck_tenant_settings_gross_margin", "tenant_settings")
    op.drop_column("tenant_settings", "gross_margin")
