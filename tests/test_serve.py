"""`brandloop serve` (what `make serve` runs) as a new user meets it, in a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from support import Tenant

LIST = {"query": "{ customers(first: 50) { totalCount edges { node { displayName email tags { name } } } } }"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Starts `brandloop serve`; yields its base URL and the API key it printed; stops it with Ctrl-C."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "brandloop"), "serve", "--port", str(port)],
        env={**env, "BRANDLOOP_LOG_JSON": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    key = None
    lines = []
    deadline = time.monotonic() + 90
    try:
        while key is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("API key: "):
                key = line.removeprefix("API key: ").strip()
        assert key, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, key
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        assert code == 0, "".join(lines) + (process.stdout.read() or "")


def base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDLOOP_")}
    env["BRANDLOOP_DATA_DIR"] = str(data_dir)
    return env


def test_serve_on_the_configured_database(database_url: str, tmp_path: Path, tenant: Tenant) -> None:
    env = {**base_env(tmp_path), "BRANDLOOP_DATABASE_URL": database_url}
    with serving(env) as (base, key):
        headers = {"Authorization": f"Bearer {key}"}
        body = httpx.post(f"{base}/graphql", json=LIST, headers=headers).json()
        demo = body["data"]["customers"]
        assert demo["totalCount"] == 12
        assert {"name": "vip"} in demo["edges"][0]["node"]["tags"]
        # Another tenant's key sees none of the demo customers.
        other = httpx.post(
            f"{base}/graphql", json=LIST, headers={"Authorization": f"Bearer {tenant.key}"}
        ).json()
        assert other["data"]["customers"]["totalCount"] == 0
        assert httpx.get(f"{base}/graphql").status_code == 200  # GraphiQL in development
    # A second run reuses the data: the same key, the same customers.
    with serving(env) as (base, again):
        assert again == key
        body = httpx.post(f"{base}/graphql", json=LIST, headers={"Authorization": f"Bearer {key}"}).json()
        assert body["data"]["customers"]["totalCount"] == 12


def test_serve_on_the_embedded_database_and_stop_it_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(base_env(data_dir)) as (base, key):
        body = httpx.post(f"{base}/graphql", json=LIST, headers={"Authorization": f"Bearer {key}"}).json()
        assert body["data"]["customers"]["totalCount"] == 12
        assert (data_dir / "postgres" / "postmaster.pid").exists()
    # Ctrl-C stopped the embedded PostgreSQL too.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
