"""Relay fixtures: a throw-away PostgreSQL server, and a store of each backend.

Test modules import the ``*_fixture`` functions; pytest knows them by their ``name``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import require
from tlsca import certificates

from healthwallet import keys
from healthwallet.relay import protocol
from healthwallet.relay.config import Limits, RelayConfig
from healthwallet.relay.server import listen, make_server
from healthwallet.relay.sqlite_store import SqliteStore
from healthwallet.relay.store import SqlStore


def _pg_bin() -> Path:
    """Debian's PostgreSQL server binaries (the newest installed major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
PG_USER = "postgres"  # PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*argv: str) -> None:
    """Run a PostgreSQL tool: as the postgres user when we are root, else as ourselves."""
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *argv], check=True, capture_output=True)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for this test session; yields a DSN prefix."""
    require((PG_BIN / "initdb").exists(), "PostgreSQL server binaries (Debian package postgresql)")
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser")
        try:
            subprocess.run(["id", PG_USER], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            require(False, f"a '{PG_USER}' system user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="hw-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    if os.geteuid() == 0:
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


# -- a real relay (uvicorn, TLS) on 127.0.0.1, in a thread of the test process --------------------


def signed_request(client: httpx.Client, base: str, identity: keys.Identity, method: str,
                   path: str, body: Any, now: int, nonce: str | None = None) -> httpx.Response:
    """A management request to ``base + path`` signed by ``identity`` at ``now``."""
    raw = b"" if body is None else json.dumps(body).encode()
    header = protocol.sign_request(identity, method, "/" + path, raw, now, nonce)
    return client.request(method, base + path, content=raw, headers={"Authorization": header})


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Relay:
    """A running relay: its URL, clock, store and an HTTPS client that trusts its test CA."""

    url: str
    clock: Clock
    store: SqlStore
    client: httpx.Client
    ca_file: Path

    def signed(self, identity: keys.Identity, method: str, path: str, body: Any = None,
               nonce: str | None = None) -> httpx.Response:
        """A management request signed by ``identity`` (``path`` relative to the base URL)."""
        return signed_request(self.client, self.url, identity, method, path, body,
                              int(self.clock()), nonce)

    def create(self, identity: keys.Identity, **fields: Any) -> dict[str, Any]:
        """Create a link (one small FHIR file unless ``files`` is given); its description."""
        fields.setdefault("files", [jwe_file()])
        answer = self.signed(identity, "POST", protocol.API_LINKS, fields)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def manifest(self, url: str, **body: Any) -> httpx.Response:
        body.setdefault("recipient", "Dr. Example")
        return self.client.post(url, json=body)


KEY = b"k" * 32


def make_jwe(payload: bytes, content_type: str = "application/fhir+json") -> str:
    """A real compact JWE (dir, A256GCM) of ``payload`` under the test key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = keys.b64url(json.dumps({"alg": "dir", "enc": "A256GCM", "cty": content_type})
                         .encode())
    iv = os.urandom(12)
    sealed = AESGCM(KEY).encrypt(iv, payload, header.encode("ascii"))
    return ".".join([header, "", keys.b64url(iv), keys.b64url(sealed[:-16]),
                     keys.b64url(sealed[-16:])])


def jwe_file(payload: bytes = b'{"resourceType":"Bundle","type":"collection"}',
             content_type: str = "application/fhir+json") -> dict[str, str]:
    return {"contentType": content_type, "jwe": make_jwe(payload, content_type)}


@contextlib.contextmanager
def running_relay(store: SqlStore, folder: Path, **settings: Any) -> Iterator[Relay]:
    """Serve ``store`` over TLS on 127.0.0.1 until the block ends."""
    ca_file, cert, key = certificates(folder)
    clock = Clock()
    limits = Limits(**settings.pop("limits", {}))
    settings.setdefault("open_registration", True)
    sock = listen("127.0.0.1", 0)
    url = f"https://127.0.0.1:{sock.getsockname()[1]}/"
    config = RelayConfig(public_url=url, limits=limits, clock=clock, **settings)
    server = make_server(store, config, cert, key)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "relay did not start"
        time.sleep(0.02)
    context = ssl.create_default_context(cafile=str(ca_file))
    client = httpx.Client(verify=context, timeout=30)
    try:
        yield Relay(url, clock, store, client, ca_file)
    finally:
        client.close()  # first, so the server has no open connection to wait for
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(name="relay")
def relay_fixture(store: SqlStore, tmp_path: Path) -> Iterator[Relay]:
    """A relay over each store backend, open to every DID, with the default limits but a
    generous request rate."""
    with running_relay(store, tmp_path, limits={"requests_per_second": 1000, "burst": 1000}) as r:
        yield r
