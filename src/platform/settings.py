"""Configuration: environment variables prefixed `BRANDLOOP_`, or a `.env` file."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRANDLOOP_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means the embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Path(".brandloop")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_pool_size: int = Field(default=10, ge=1, le=200)

    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = True

    # JWTs from the tenant's identity provider.
    jwt_issuer: str | None = None
    jwt_audience: str = "brandloop"
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    jwt_tenant_claim: str = "brandloop_tenant"
    jwt_role_claim: str = "brandloop_role"
    jwks_cache_seconds: int = Field(default=600, ge=10)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    dev_tokens: bool | None = Field(
        default=None,
        description="Accept tokens from `brandloop token`; default: outside production only (refused in it).",
    )
    graphiql: bool | None = Field(
        default=None,
        description="Serve GraphiQL on GET /graphql; default: outside production only (refused in it).",
    )

    # Limits against abuse.
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs survey links. Required in production (32+ characters, the same on every "
        "API process); in development one is generated into the data folder.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Encrypts connector secrets at rest: 32 random bytes, base64url. Required in "
        "production; in development one is generated into the data folder.",
    )
    previous_encryption_keys: list[SecretStr] = Field(
        default=[],
        description="Keys being rotated out (a JSON list): they still open what they sealed until "
        "`brandloop connections reseal` has sealed it under BRANDLOOP_ENCRYPTION_KEY.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Where customers reach this API (survey links)."
    )
    worker: bool | None = Field(
        default=None,
        description="Run the job worker inside `brandloop serve`; default: only with the embedded database.",
    )
    max_page_size: int = Field(default=100, ge=1, le=1000)
    max_query_depth: int = Field(default=10, ge=2)
    max_query_cost: int = Field(default=50_000, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=5_000, ge=100)
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)

    planner: bool = Field(
        default=True, description="Answer covered reads with one SQL statement (docs/architecture.md)."
    )

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return not self.production if self.graphiql is None else self.graphiql

    @property
    def dev_tokens_enabled(self) -> bool:
        return not self.production if self.dev_tokens is None else self.dev_tokens

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> Settings:
        if not self.production:
            return self
        problems = []
        if self.database_url is None:
            problems.append("BRANDLOOP_DATABASE_URL must be set (no embedded database)")
        if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
            problems.append("BRANDLOOP_SECRET_KEY must be set, 32 characters or more")
        if self.encryption_key is None or not _is_key(self.encryption_key):
            problems.append("BRANDLOOP_ENCRYPTION_KEY must be set: 32 bytes, base64url")
        elif self.encryption_key.get_secret_value() == _development_key(self.data_dir, "encryption-key"):
            problems.append("BRANDLOOP_ENCRYPTION_KEY must not be the development key of the data folder")
        if self.dev_tokens:
            problems.append("BRANDLOOP_DEV_TOKENS must be off: development tokens are for laptops")
        if self.graphiql:
            problems.append("BRANDLOOP_GRAPHIQL must be off")
        if not self.public_url.startswith("https://"):
            problems.append("BRANDLOOP_PUBLIC_URL must be the https address customers and platforms reach")
        if self.jwt_jwks_url and not self.jwt_issuer:
            problems.append("BRANDLOOP_JWT_ISSUER must be set with BRANDLOOP_JWT_JWKS_URL")
        if problems:
            raise ValueError("production settings refused: " + "; ".join(problems))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()


def _is_key(value: SecretStr | None) -> bool:
    if value is None:
        return False
    text = value.get_secret_value()
    try:
        return len(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == 32
    except ValueError:
        return False


def _development_key(data_dir: Path, name: str) -> str | None:
    path = Path(data_dir) / name
    return path.read_text().strip() if path.is_file() else None


def development_secret(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A secret kept in the data folder (mode 0600), made on first use; for development only,
    where production takes it from the environment."""
    path = Path(data_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as file:
                file.write(make())
    return path.read_text().strip()
