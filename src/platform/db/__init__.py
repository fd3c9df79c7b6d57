"""Database access: engine, embedded PostgreSQL, tenant-scoped transactions, migrations."""
