"""The SQL that puts a tenant-owned table under row-level security; used by migrations."""

from __future__ import annotations

from brandloop.db.session import APP_ROLE

CURRENT_TENANT = "(SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)"
"""The tenant of the transaction, cast once; NULL (matching nothing) when none is set.

`nullif` matters: on a pooled connection a setting once set locally reads back as ''.
"""


def protect_tenant_table(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> list[str]:
    """Statements that isolate `table` by tenant and grant the app role what it may do."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})",
        f"GRANT {privileges} ON {table} TO {APP_ROLE}",
    ]
