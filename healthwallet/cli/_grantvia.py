"""`grant --via` and `open URL`: the CLI side of the grant relay (healthwallet/grantvia.py)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError

if TYPE_CHECKING:
    import httpx

    from ..wallet import Wallet

RELAY_TIMEOUT = 60.0


def _client() -> httpx.Client:
    """An HTTPS client for a relay the user named (system trust, or SSL_CERT_FILE)."""
    import httpx

    return httpx.Client(timeout=RELAY_TIMEOUT, follow_redirects=False)


def relay_grant(wallet: Wallet, via: str, grant_path: str) -> dict[str, Any]:
    """Upload the grant file just written; the relay's answer (``url`` for the doctor)."""
    from .. import grantvia

    grantvia.relay_base(via)  # a bad URL fails before anything is read
    try:
        data = Path(grant_path).read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read the grant file ({exc.strerror})") from None
    with _client() as client:
        return grantvia.upload(client, wallet.identity, via, data, _now())


def _now() -> int:
    import time

    return int(time.time())


@contextlib.contextmanager
def fetched_grant(wallet: Wallet, url: str) -> Iterator[Path]:
    """The relayed grant at ``url``, fetched with the wallet's key into a private temporary
    file in the wallet home (deleted afterwards)."""
    from .. import grantvia

    grantvia.parse_grant_url(url)
    with _client() as client:
        data = grantvia.fetch(client, wallet.identity, url, _now())
    handle, name = tempfile.mkstemp(prefix=".relayed-", suffix=".hwgrant", dir=wallet.home)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
