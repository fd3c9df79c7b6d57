"""The embedded PostgreSQL a new user gets when BRANDLOOP_DATABASE_URL is unset.

pgserver ships PostgreSQL as a wheel and reference-counts the processes using one data folder:
the server stops when the last of them (`make serve`, a CLI command) exits.
"""

from __future__ import annotations

import warnings
from pathlib import Path


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server for `data_dir`; returns its libpq-style URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers.
        warnings.simplefilter("ignore")
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    info = server.get_postmaster_info()
    return f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"
