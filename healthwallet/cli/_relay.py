"""`healthwallet relay serve`: run a SMART Health Links relay (docs/relay.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import BadInputError, UsageError
from ..relay import config as cfg
from ._common import JsonOption, notes_console

if TYPE_CHECKING:
    import socket

    from ..relay.server import RelayServer

relay_app = typer.Typer(help="Run a SMART Health Links relay.", no_args_is_help=True)

MAX_ALLOW_FILE_BYTES = 1 << 20


def allowed_patients(dids: list[str], files: list[Path]) -> frozenset[str]:
    """The did:keys from --allow-patient and --allow-patients-file (one per line, # comments)."""
    found = list(dids)
    for path in files:
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_ALLOW_FILE_BYTES + 1)
        except OSError as exc:
            raise BadInputError(f"cannot read the allowed-patients file ({exc.strerror})") from None
        if len(raw) > MAX_ALLOW_FILE_BYTES:
            raise BadInputError("the allowed-patients file is larger than 1 MiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInputError("the allowed-patients file is not UTF-8 text") from None
        found += [line.split("#", 1)[0].strip() for line in text.splitlines()]
    allowed = frozenset(did for did in found if did)
    from .. import keys

    for did in allowed:
        if not keys.is_did_key(did):
            raise UsageError(
                "an allowed patient is not an Ed25519 did:key",
                "give each patient's DID as `healthwallet id` prints it (did:key:z6Mk…)",
            )
    return allowed


def public_url(given: str | None, host: str, port: int) -> str:
    """The base URL links are made under: https, ending in ``/``."""
    url = given or f"https://{host}:{port}/"
    if not url.startswith("https://") or any(c in url for c in "?#\\ \t\r\n"):
        raise UsageError(
            "--public-url must be an https:// URL without query or fragment",
            "SMART Health Links require https; give the address clients reach",
        )
    return url if url.endswith("/") else url + "/"


def _run(server: RelayServer, sock: socket.socket, url: str, as_json: bool) -> None:
    """Serve until a stop signal; the ready line goes out once connections are accepted."""
    host, port = sock.getsockname()[:2]

    def ready() -> None:
        if as_json:
            line = json.dumps({"host": host, "port": port, "url": url})
        else:
            line = f"relay serving {url} on {host}:{port}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    server.on_ready = ready
    server.run(sockets=[sock])


@relay_app.command("serve")
def serve(
    cert: Annotated[Path, typer.Option("--cert", help="TLS certificate chain (PEM).")],
    key: Annotated[Path, typer.Option("--key", help="TLS private key (PEM).")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8443,
    db: Annotated[
        Path | None, typer.Option("--db", help="SQLite link store (default ./relay.db).")
    ] = None,
    postgres: Annotated[
        str | None,
        typer.Option("--postgres", help="PostgreSQL DSN: a link store shared by several relays."),
    ] = None,
    allow_patient: Annotated[
        list[str] | None,
        typer.Option("--allow-patient", help="A did:key that may create links (repeatable)."),
    ] = None,
    allow_patients_file: Annotated[
        list[Path] | None,
        typer.Option("--allow-patients-file", help="A file of such DIDs, one per line."),
    ] = None,
    open_registration: Annotated[
        bool, typer.Option("--open-registration", help="Let any did:key create links.")
    ] = False,
    public: Annotated[
        str | None,
        typer.Option("--public-url", help="Base URL in links (default https://HOST:PORT/)."),
    ] = None,
    max_upload_mib: Annotated[
        int, typer.Option("--max-upload-mib", help="Largest upload (MiB).")
    ] = cfg.MAX_UPLOAD_BYTES // cfg.MIB,
    max_links: Annotated[
        int, typer.Option("--max-links-per-patient", help="Unrevoked links per DID.")
    ] = cfg.MAX_LINKS_PER_PATIENT,
    rate: Annotated[
        float,
        typer.Option("--rate", help="Requests per second per client address (0: off)."),
    ] = cfg.REQUESTS_PER_SECOND,
    burst: Annotated[
        int, typer.Option("--burst", help="Requests a client may send at once.")
    ] = cfg.BURST,
    hash_workers: Annotated[
        int, typer.Option("--hash-workers", help="Concurrent passcode checks.")
    ] = cfg.HASH_WORKERS,
    as_json: JsonOption = False,
) -> None:
    """Serve SMART Health Links over TLS until SIGINT or SIGTERM.

    Example: healthwallet relay serve --cert cert.pem --key key.pem --allow-patient did:key:z6Mk…
    """
    from ..relay.server import listen, make_server, open_store

    _check_range("--max-upload-mib", max_upload_mib, 1, 4096)
    _check_range("--max-links-per-patient", max_links, 1, None)
    _check_range("--rate", rate, 0, None)
    _check_range("--burst", burst, 1, None)
    _check_range("--hash-workers", hash_workers, 1, 64)
    if db is not None and postgres is not None:
        raise UsageError("give --db or --postgres, not both", "see `healthwallet relay serve -h`")
    allowed = allowed_patients(allow_patient or [], allow_patients_file or [])
    limits = cfg.Limits(
        max_upload_bytes=max_upload_mib * cfg.MIB,
        max_links_per_patient=max_links,
        requests_per_second=rate,
        burst=burst,
        hash_workers=hash_workers,
    )
    sock = listen(host, port)
    try:
        config = cfg.RelayConfig(
            public_url=public_url(public, host, sock.getsockname()[1]),
            allowed_patients=allowed,
            open_registration=open_registration,
            limits=limits,
        )
        store = open_store(db or Path("relay.db") if postgres is None else None, postgres)
        try:
            server = make_server(store, config, cert, key)
            if not allowed and not open_registration:
                notes_console().print("note: no patient may create links (see --allow-patient)")
            _run(server, sock, config.public_url, as_json)
        finally:
            store.close()
    finally:
        sock.close()
    notes_console().print("relay stopped")


def register(app: typer.Typer) -> None:
    """Attach the `relay` command group."""
    app.add_typer(relay_app, name="relay")


def _check_range(option: str, value: float, low: float, high: float | None) -> None:
    """Refuse a number outside its documented range (checked here, not by typer: see _coerce)."""
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        raise UsageError(f"{option} must be {bound}", "see `healthwallet relay serve -h`")
