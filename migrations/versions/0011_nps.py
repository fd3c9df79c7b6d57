"""NPS: surveys, invitations, responses, follow-up tasks; the tenant's survey settings.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
SETTINGS = [
    sa.Column("survey_quiet_days", sa.Integer, nullable=False, server_default="90"),
    sa.Column("nps_min_responses", sa.Integer, nullable=False, server_default="30"),
    sa.Column("detractor_follow_up_hours", sa.Integer, nullable=False, server_default="48"),
]


def _customer_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"],
        ["customers.tenant_id", "customers.id"],
        name=f"fk_{table}_customer_id_customers",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    for column in SETTINGS:
        op.add_column("tenant_settings", column)
    op.create_table(
        "nps_surveys",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("question", JSONB, nullable=False),
        sa.Column("comment_prompt", JSONB),
        sa.Column("follow_ups", JSONB, nullable=False, server_default="[]"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channels", ARRAY(sa.String(32)), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_status", sa.String(24)),
        sa.Column("trigger_delay_days", sa.SmallInteger),
        sa.Column("link_days", sa.SmallInteger, nullable=False, server_default="14"),
        sa.Column("follow_up_passives", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_nps_surveys"),
        sa.CheckConstraint("status IN ('draft', 'active', 'closed')", name="ck_nps_surveys_status"),
        sa.CheckConstraint(
            "(trigger = 'manual' AND trigger_status IS NULL AND trigger_delay_days IS NULL)"
            " OR (trigger = 'after_order' AND trigger_status IS NOT NULL AND trigger_delay_days >= 0)",
            name="ck_nps_surveys_trigger",
        ),
        sa.CheckConstraint("link_days > 0", name="ck_nps_surveys_link_days"),
    )
    op.create_table(
        "nps_invitations",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("survey_id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("order_id", UUID),
        sa.Column("trigger_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.String(16)),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", TIMESTAMP),
        sa.Column("responded_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_nps_invitations"),
        sa.UniqueConstraint("tenant_id", "trigger_key", name="uq_nps_invitations_trigger_key"),
        sa.Index(
            "ix_nps_invitations_tenant_id_customer_id_created_at", "tenant_id", "customer_id", "created_at"
        ),
        sa.Index("ix_nps_invitations_tenant_id_survey_id_id", "tenant_id", "survey_id", "id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survey_id"],
            ["nps_surveys.tenant_id", "nps_surveys.id"],
            name="fk_nps_invitations_survey_id_nps_surveys",
        ),
        _customer_fk("nps_invitations"),
        sa.CheckConstraint(
            "(status IN ('created', 'responded') AND skip_reason IS NULL)"
            " OR (status = 'skipped' AND skip_reason IN ('quiet_period', 'no_consent'))",
            name="ck_nps_invitations_status",
        ),
    )
    op.create_table(
        "nps_responses",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("invitation_id", UUID, nullable=False),
        sa.Column("survey_id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("order_id", UUID),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("answers", JSONB, nullable=False, server_default="[]"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_nps_responses"),
        # One response per invitation: the link is single-use even if two submissions race.
        sa.UniqueConstraint("tenant_id", "invitation_id", name="uq_nps_responses_invitation_id"),
        sa.Index(
            "ix_nps_responses_tenant_id_customer_id_created_at", "tenant_id", "customer_id", "created_at"
        ),
        sa.Index("ix_nps_responses_tenant_id_survey_id_created_at", "tenant_id", "survey_id", "created_at"),
        sa.Index("ix_nps_responses_tenant_id_created_at", "tenant_id", "created_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "invitation_id"],
            ["nps_invitations.tenant_id", "nps_invitations.id"],
            name="fk_nps_responses_invitation_id_nps_invitations",
        ),
        _customer_fk("nps_responses"),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name="ck_nps_responses_score"),
        sa.CheckConstraint("length(comment) <= 2000", name="ck_nps_responses_comment"),
    )
    op.create_table(
        "nps_tasks",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("response_id", UUID, nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("notes", JSONB, nullable=False, server_default="[]"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("resolved_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_nps_tasks"),
        sa.UniqueConstraint("tenant_id", "response_id", name="uq_nps_tasks_response_id"),
        sa.Index("ix_nps_tasks_tenant_id_status_due_at", "tenant_id", "status", "due_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "response_id"],
            ["nps_responses.tenant_id", "nps_responses.id"],
            name="fk_nps_tasks_response_id_nps_responses",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("status IN ('open', 'contacted', 'resolved')", name="ck_nps_tasks_status"),
    )
    for table, privileges in [
        ("nps_surveys", "SELECT, INSERT, UPDATE"),
        ("nps_invitations", "SELECT, INSERT, UPDATE"),
        ("nps_responses", "SELECT, INSERT"),
        ("nps_tasks", "SELECT, INSERT, UPDATE"),
    ]:
        for statement in protect_tenant_table(table, privileges):
            op.execute(statement)


def downgrade() -> None:
    for table in ["nps_tasks", "nps_responses", "nps_invitations", "nps_surveys"]:
        op.drop_table(table)
    for column in reversed(SETTINGS):
        op.drop_column("tenant_settings", column.name)
