"""One bounded HTTP GET for documents named by others (status lists, did:web documents)."""

from __future__ import annotations

import httpx

from .errors import BadInputError, NetworkError


def fetch_document(
    url: str,
    what: str,
    *,
    transport: httpx.BaseTransport | None,
    timeout: float,
    max_bytes: int,
    accept: str,
    follow_redirects: bool,
) -> bytes:
    """The body of a 200 answer to GET ``url``, at most ``max_bytes`` long.

    ``what`` names the document in messages ("status list"). NetworkError when the server
    cannot be reached or answers anything but 200; BadInputError when the body is too large.
    TLS is checked against the system's trust store (or ``SSL_CERT_FILE``), as httpx does.
    """
    limit = f"{max_bytes // (1 << 20)} MiB" if max_bytes >= 1 << 20 else f"{max_bytes >> 10} KiB"
    try:
        with (
            httpx.Client(
                transport=transport,
                timeout=timeout,
                follow_redirects=follow_redirects,
                max_redirects=5,
            ) as client,
            client.stream("GET", url, headers={"Accept": accept}) as response,
        ):
            if response.status_code != 200:
                raise NetworkError(f"{what} {url} answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise BadInputError(f"{what} {url} is larger than {limit}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise BadInputError(f"{what} {url} is larger than {limit}")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot fetch {what} {url} ({type(exc).__name__})") from None
