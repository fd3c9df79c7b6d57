"""Foundation: tenants, the application role, API keys, customers and tags under RLS.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from brandloop.db.rls import CURRENT_TENANT, protect_tenant_table
from brandloop.db.session import APP_ROLE

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def _tenant_id() -> sa.Column:
    return sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False)


def _create_app_role() -> None:
    # Roles are cluster-wide: another database of the cluster (a parallel test run) may be
    # creating it at the same moment, hence the exception handler rather than IF NOT EXISTS.
    op.execute(
        f"""
        DO $$
        BEGIN
            CREATE ROLE {APP_ROLE} NOLOGIN NOINHERIT NOBYPASSRLS NOSUPERUSER;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'
                       AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
                ALTER ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS NOSUPERUSER;
            END IF;
            -- A non-superuser owner must be a member to SET ROLE to it.
            IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            END IF;
        END $$;
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")


def upgrade() -> None:
    _create_app_role()

    op.create_table(
        "tenants",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("slug"),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenants_status"),
        sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="ck_tenants_slug"),
    )
    # Platform-level: the owner (admin operations) sees every tenant; the app role only its own.
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_self ON tenants FOR SELECT USING (id = {CURRENT_TENANT})")
    op.execute(f"GRANT SELECT ON tenants TO {APP_ROLE}")

    op.create_table(
        "api_keys",
        _tenant_id(),
        sa.Column("id", UUID, nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TIMESTAMP),
        sa.Column("last_used_at", TIMESTAMP),
        sa.Column("revoked_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("prefix"),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'marketer', 'analyst', 'viewer')", name="ck_api_keys_role"
        ),
    )
    for statement in protect_tenant_table("api_keys", "SELECT, INSERT, UPDATE"):
        op.execute(statement)
    # Authentication reads one key by its visible prefix before the tenant is known.
    op.execute(
        "CREATE POLICY api_key_lookup ON api_keys FOR SELECT "
        "USING (prefix = (SELECT nullif(current_setting('app.api_key_prefix', true), '')))"
    )

    op.create_table(
        "customers",
        _tenant_id(),
        sa.Column("id", UUID, nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("phone", sa.String(20)),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="prospect"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.CheckConstraint(
            "lifecycle_stage IN ('prospect', 'new', 'active', 'dormant', 'churned')",
            name="ck_customers_lifecycle_stage",
        ),
    )
    op.create_index(
        "uq_customers_tenant_id_email",
        "customers",
        ["tenant_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.create_index(
        "ix_customers_tenant_id_lifecycle_stage_id", "customers", ["tenant_id", "lifecycle_stage", "id"]
    )
    for statement in protect_tenant_table("customers"):
        op.execute(statement)

    op.create_table(
        "tags",
        _tenant_id(),
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="static"),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.CheckConstraint(
            "kind IN ('static', 'dynamic', 'interest', 'scenario', 'value')", name="ck_tags_kind"
        ),
    )
    op.execute("CREATE UNIQUE INDEX uq_tags_tenant_id_name ON tags (tenant_id, lower(name))")
    for statement in protect_tenant_table("tags"):
        op.execute(statement)

    op.create_table(
        "customer_tags",
        _tenant_id(),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("tag_id", UUID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", "tag_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tenant_id", "tag_id"], ["tags.tenant_id", "tags.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_customer_tags_tenant_id_tag_id", "customer_tags", ["tenant_id", "tag_id"])
    for statement in protect_tenant_table("customer_tags", "SELECT, INSERT, DELETE"):
        op.execute(statement)


def downgrade() -> None:
    for table in ("customer_tags", "tags", "customers", "api_keys", "tenants"):
        op.drop_table(table)
    # The role is cluster-wide and may serve other databases; only this database's grant goes.
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
