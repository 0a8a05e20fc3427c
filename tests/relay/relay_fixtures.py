"""Relay fixtures: a throw-away PostgreSQL server, and a store of each backend.

Test modules import the ``*_fixture`` functions; pytest knows them by their ``name``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require

from healthwallet.relay.sqlite_store import SqliteStore
from healthwallet.relay.store import SqlStore

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*argv: str) -> None:
    subprocess.run(["runuser", "-u", PG_USER, "--", *argv], check=True, capture_output=True)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for this test session; yields a DSN prefix."""
    require((PG_BIN / "initdb").exists(), "PostgreSQL 15 server binaries")
    require(shutil.which("runuser") is not None, "runuser")
    if os.geteuid() == 0:
        try:
            subprocess.run(["id", PG_USER], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            require(False, f"a '{PG_USER}' system user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="hw-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    shutil.chown(folder, PG_USER)
    port = free_port()
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "relay",
                 "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                 str(folder / "log"), "-w", "start")
    try:
        yield f"host=127.0.0.1 port={port} user=relay"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(name="postgres_dsn")
def postgres_dsn_fixture(postgres_server: str) -> str:
    """A DSN for a fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = "t" + uuid.uuid4().hex
    with psycopg.connect(postgres_server + " dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    return f"{postgres_server} dbname={name}"


@pytest.fixture(params=["sqlite", "postgres"], name="store")
def store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A new, empty link store of each backend."""
    made: SqlStore
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "relay.db")
    else:
        from healthwallet.relay.pg_store import PostgresStore

        made = PostgresStore(request.getfixturevalue("postgres_dsn"))
    yield made
    made.close()
