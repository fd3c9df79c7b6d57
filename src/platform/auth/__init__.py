"""Who is calling: API keys, JWTs, roles and permissions."""
