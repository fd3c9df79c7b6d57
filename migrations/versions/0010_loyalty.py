"""Loyalty: programs, versioned earning rules, tiers, accounts, the append-only ledger and its
lots, rewards and redemptions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
POINTS = sa.BigInteger


def _program_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "program_id"],
        ["loyalty_programs.tenant_id", "loyalty_programs.id"],
        name=f"fk_{table}_program_id_loyalty_programs",
    )


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "account_id"],
        ["loyalty_accounts.tenant_id", "loyalty_accounts.id"],
        name=f"fk_{table}_account_id_loyalty_accounts",
    )


def upgrade() -> None:
    op.create_table(
        "loyalty_programs",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("points_name", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channels", ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("enrolment", sa.String(16), nullable=False),
        sa.Column("expiry_policy", sa.String(16), nullable=False),
        sa.Column("expiry_period", sa.SmallInteger),
        sa.Column("pending_days", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("point_cost", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column("tier_window_days", sa.SmallInteger, nullable=False, server_default="365"),
        sa.Column("tier_review_months", sa.SmallInteger, nullable=False, server_default="12"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_programs"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_loyalty_programs_tenant_id_name"),
        sa.CheckConstraint("status IN ('active', 'paused', 'closed')", name="ck_loyalty_programs_status"),
        sa.CheckConstraint("enrolment IN ('automatic', 'explicit')", name="ck_loyalty_programs_enrolment"),
        sa.CheckConstraint(
            "(expiry_policy = 'none' AND expiry_period IS NULL)"
            " OR (expiry_policy IN ('months', 'year_end') AND expiry_period > 0)",
            name="ck_loyalty_programs_expiry",
        ),
        sa.CheckConstraint("pending_days >= 0", name="ck_loyalty_programs_pending_days"),
        sa.CheckConstraint("point_cost >= 0", name="ck_loyalty_programs_point_cost"),
        sa.CheckConstraint(
            "tier_window_days > 0 AND tier_review_months > 0", name="ck_loyalty_programs_tier_periods"
        ),
    )
    op.create_table(
        "loyalty_rule_versions",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("program_id", UUID, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("effective_from", TIMESTAMP, nullable=False),
        sa.Column("rules", JSONB, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", "version", name="pk_loyalty_rule_versions"),
        sa.UniqueConstraint(
            "tenant_id", "program_id", "effective_from", name="uq_loyalty_rule_versions_effective_from"
        ),
        _program_fk("loyalty_rule_versions"),
    )
    op.create_table(
        "loyalty_tiers",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("program_id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("rank", sa.SmallInteger, nullable=False),
        sa.Column("spend_threshold", sa.BigInteger, nullable=False),
        sa.Column("interaction_threshold", POINTS, nullable=False),
        sa.Column("multiplier", sa.Numeric(8, 4), nullable=False, server_default="1"),
        sa.Column("benefits", ARRAY(sa.String(200)), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_tiers"),
        sa.UniqueConstraint("tenant_id", "program_id", "rank", name="uq_loyalty_tiers_rank"),
        sa.UniqueConstraint("tenant_id", "program_id", "name", name="uq_loyalty_tiers_name"),
        _program_fk("loyalty_tiers"),
        sa.CheckConstraint(
            "rank >= 0 AND spend_threshold >= 0 AND interaction_threshold >= 0 AND multiplier > 0",
            name="ck_loyalty_tiers_values",
        ),
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("program_id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("balance", POINTS, nullable=False, server_default="0"),
        sa.Column("enrolled_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("tier_id", UUID),
        sa.Column("tier_since", TIMESTAMP),
        sa.Column("tier_review_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_accounts"),
        sa.UniqueConstraint(
            "tenant_id",
            "program_id",
            "customer_id",
            name="uq_loyalty_accounts_tenant_id_program_id_customer_id",
        ),
        sa.Index("ix_loyalty_accounts_tenant_id_customer_id", "tenant_id", "customer_id"),
        _program_fk("loyalty_accounts"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            name="fk_loyalty_accounts_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "tier_id"],
            ["loyalty_tiers.tenant_id", "loyalty_tiers.id"],
            name="fk_loyalty_accounts_tier_id_loyalty_tiers",
        ),
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("delta", POINTS, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(64)),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP),
        sa.Column("rule_version", sa.Integer),
        sa.Column("reason", sa.String(500)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_ledger"),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_loyalty_ledger_tenant_id_idempotency_key"
        ),
        sa.Index("ix_loyalty_ledger_tenant_id_account_id_id", "tenant_id", "account_id", "id"),
        sa.Index("ix_loyalty_ledger_tenant_id_source_source_id", "tenant_id", "source", "source_id"),
        _account_fk("loyalty_ledger"),
        sa.CheckConstraint("delta <> 0", name="ck_loyalty_ledger_delta"),
        sa.CheckConstraint(
            "kind IN ('earn', 'redeem', 'expire', 'reverse', 'adjust', 'transfer')",
            name="ck_loyalty_ledger_kind",
        ),
        sa.CheckConstraint(
            "source IN ('order', 'event', 'redemption', 'admin', 'expiry', 'merge')",
            name="ck_loyalty_ledger_source",
        ),
    )
    # What each order was valued at, once, when first seen paid; refunds scale it.
    op.create_table(
        "loyalty_order_valuations",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("program_id", UUID, nullable=False),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("uncapped_points", POINTS, nullable=False),
        sa.Column("spend", sa.BigInteger, nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("valued_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "program_id", "order_id", name="pk_loyalty_order_valuations"),
        _program_fk("loyalty_order_valuations"),
        sa.CheckConstraint(
            "0 <= points AND points <= uncapped_points", name="ck_loyalty_order_valuations_points"
        ),
    )
    op.create_table(
        "loyalty_lots",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("remaining", POINTS, nullable=False),
        sa.Column("earned_at", TIMESTAMP, nullable=False),
        sa.Column("available_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_lots"),
        sa.Index("ix_loyalty_lots_tenant_id_account_id_earned_at", "tenant_id", "account_id", "earned_at"),
        sa.Index(
            "ix_loyalty_lots_tenant_id_expires_at",
            "tenant_id",
            "expires_at",
            postgresql_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
        _account_fk("loyalty_lots"),
        sa.CheckConstraint("0 <= remaining AND remaining <= points", name="ck_loyalty_lots_remaining"),
    )
    op.create_table(
        "loyalty_tier_changes",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("from_tier_id", UUID),
        sa.Column("to_tier_id", UUID),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("qualifying_spend", sa.BigInteger, nullable=False),
        sa.Column("interaction_points", POINTS, nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_tier_changes"),
        sa.Index("ix_loyalty_tier_changes_tenant_id_account_id_id", "tenant_id", "account_id", "id"),
        _account_fk("loyalty_tier_changes"),
        sa.CheckConstraint("reason IN ('upgrade', 'downgrade')", name="ck_loyalty_tier_changes_reason"),
    )
    op.create_table(
        "loyalty_rewards",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("program_id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points_cost", POINTS, nullable=False),
        sa.Column("stock", sa.Integer),
        sa.Column("per_customer_limit", sa.Integer),
        sa.Column("min_tier_rank", sa.SmallInteger),
        sa.Column("valid_from", TIMESTAMP, nullable=False),
        sa.Column("valid_until", TIMESTAMP),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_rewards"),
        _program_fk("loyalty_rewards"),
        sa.CheckConstraint("kind IN ('coupon', 'free_product', 'gift')", name="ck_loyalty_rewards_kind"),
        sa.CheckConstraint("status IN ('active', 'retired')", name="ck_loyalty_rewards_status"),
        sa.CheckConstraint(
            "points_cost > 0 AND (stock IS NULL OR stock >= 0)"
            " AND (per_customer_limit IS NULL OR per_customer_limit > 0)",
            name="ck_loyalty_rewards_values",
        ),
    )
    op.create_table(
        "loyalty_redemptions",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("reward_id", UUID, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("lots", JSONB, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("cancelled_at", TIMESTAMP),
        sa.Column("cancel_reason", sa.String(500)),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_loyalty_redemptions"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_loyalty_redemptions_idempotency_key"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_loyalty_redemptions_code"),
        sa.Index(
            "ix_loyalty_redemptions_tenant_id_account_id_reward_id", "tenant_id", "account_id", "reward_id"
        ),
        _account_fk("loyalty_redemptions"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reward_id"],
            ["loyalty_rewards.tenant_id", "loyalty_rewards.id"],
            name="fk_loyalty_redemptions_reward_id_loyalty_rewards",
        ),
        sa.CheckConstraint("status IN ('issued', 'cancelled')", name="ck_loyalty_redemptions_status"),
    )
    for table, privileges in [
        ("loyalty_programs", "SELECT, INSERT, UPDATE"),
        ("loyalty_rule_versions", "SELECT, INSERT"),
        ("loyalty_accounts", "SELECT, INSERT, UPDATE"),
        # Append-only: the application role may not change or remove an entry.
        ("loyalty_ledger", "SELECT, INSERT"),
        ("loyalty_order_valuations", "SELECT, INSERT"),
        ("loyalty_lots", "SELECT, INSERT, UPDATE"),
        ("loyalty_tiers", "SELECT, INSERT, UPDATE, DELETE"),
        ("loyalty_tier_changes", "SELECT, INSERT"),
        ("loyalty_rewards", "SELECT, INSERT, UPDATE"),
        ("loyalty_redemptions", "SELECT, INSERT, UPDATE"),
    ]:
        for statement in protect_tenant_table(table, privileges):
            op.execute(statement)


def downgrade() -> None:
    for table in [
        "loyalty_redemptions",
        "loyalty_rewards",
        "loyalty_tier_changes",
        "loyalty_lots",
        "loyalty_order_valuations",
        "loyalty_ledger",
        "loyalty_accounts",
        "loyalty_tiers",
        "loyalty_rule_versions",
        "loyalty_programs",
    ]:
        op.drop_table(table)
