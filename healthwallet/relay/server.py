"""Serving the relay: uvicorn over TLS, stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import ssl
from pathlib import Path

import uvicorn

from .app import create_app
from .config import RelayConfig
from .store import LinkStore

TIMEOUT_KEEP_ALIVE = 5
GRACEFUL_SHUTDOWN_SECONDS = 10


def make_server(
    store: LinkStore, config: RelayConfig, host: str, port: int, cert: Path, key: Path
) -> uvicorn.Server:
    """A uvicorn server for the relay, TLS 1.2+ only; ``serve``/``run`` it, then close the store.

    No access log: request lines carry manifest ids and location tokens, which are bearer
    secrets (docs/relay.md, "What the operator sees").
    """
    settings = uvicorn.Config(
        create_app(store, config),
        host=host,
        port=port,
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
    return uvicorn.Server(settings)
