"""Serving the relay: uvicorn over TLS on a socket we bind, stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from ..errors import NetworkError, StorageError, UsageError
from .app import create_app
from .config import RelayConfig
from .store import LinkStore

TIMEOUT_KEEP_ALIVE = 5
GRACEFUL_SHUTDOWN_SECONDS = 10
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RelayServer(uvicorn.Server):
    """uvicorn's server, except that a stop signal ends ``run`` normally instead of being
    raised again after the graceful shutdown (so `relay serve` exits 0 when told to stop)."""

    stopped_by: int | None = None
    on_ready: Callable[[], None] | None = None
    """Called once the socket accepts connections and stop signals are handled."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then call ``on_ready``."""
        await super().startup(sockets)
        if self.on_ready is not None and not self.should_exit:
            self.on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into a graceful shutdown while serving (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._stop) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, _frame: object) -> None:
        self.stopped_by = sig
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C does not wait for open connections
        self.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); UsageError if not."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__})",
            "choose another --host or --port (one that is free, above 1023 unless you are root)",
        ) from None


def make_server(store: LinkStore, config: RelayConfig, cert: Path, key: Path) -> RelayServer:
    """A uvicorn server for the relay, TLS only; ``run(sockets=[listen(…)])`` it.

    No access log: request lines carry manifest ids and location tokens, which are bearer
    secrets (docs/relay.md, "What the operator sees"). UsageError when the certificate or key
    cannot be loaded.
    """
    settings = uvicorn.Config(
        create_app(store, config),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=TIMEOUT_KEEP_ALIVE,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="off",
    )
    try:
        settings.load()
    except (ssl.SSLError, OSError, ValueError):
        raise UsageError(
            "cannot load the TLS certificate or key",
            "give --cert and --key as PEM files: the certificate chain and its private key",
        ) from None
    return RelayServer(settings)


def open_store(db: Path | None, postgres: str | None) -> LinkStore:
    """The link store the flags name: PostgreSQL when a DSN is given, else SQLite at ``db``."""
    if postgres is not None:
        import psycopg

        from .pg_store import PostgresStore

        try:
            return PostgresStore(postgres)
        except psycopg.Error as exc:
            raise NetworkError(
                f"cannot use the PostgreSQL store ({type(exc).__name__})",
                "check the --postgres DSN, that the server runs, and the role's rights",
            ) from None
    import sqlite3

    from .sqlite_store import SqliteStore

    assert db is not None
    try:
        return SqliteStore(db)
    except sqlite3.Error as exc:
        raise StorageError(
            f"cannot open the relay database ({type(exc).__name__})",
            "check that --db names a writable file that is a relay database",
        ) from None
