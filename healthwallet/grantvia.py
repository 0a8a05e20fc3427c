"""The client side of the grant relay: upload a grant (`grant --via`), fetch one (`open URL`).

The relay protocol is in healthwallet/relay/grantrelay.py and docs/format-link.md, "Grant relay".
The HTTP client is a parameter (an ``httpx.Client``): TLS trust is the caller's choice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import jsonutil, keys
from .errors import BadInputError, NetworkError, NotFoundError, UsageError
from .relay import protocol
from .termsafe import escape
from .urls import parse_url

if TYPE_CHECKING:
    import httpx

GRANT_ID = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_GRANT_DOWNLOAD = 16 * 1024 * 1024
"""The largest grant file a relay accepts (its upload limit), and so the most we read back."""


@dataclass(frozen=True)
class RelayedGrantUrl:
    """A ``{base}g/{id}`` URL split into the relay's base URL and the grant's id."""

    base: str
    grant_id: str

    @property
    def url(self) -> str:
        """The URL as the doctor was handed it."""
        return f"{self.base}{protocol.GRANT_PREFIX}{self.grant_id}"


def relay_base(text: str) -> str:
    """A relay's base URL (https, ending in ``/``); UsageError if it is not one."""
    url = parse_url(text, "the relay URL")
    if "?" in url.target:
        raise UsageError("the relay URL has a query", "give the relay's base URL")
    return url.text if url.text.endswith("/") else url.text + "/"


def is_grant_url(text: str) -> bool:
    """Whether ``text`` looks like a relayed grant's URL (not a local path)."""
    return text.lower().startswith(("https://", "http://"))


def parse_grant_url(text: str) -> RelayedGrantUrl:
    """The relay and grant id of a ``{base}g/{id}`` URL; BadInputError if it is not one."""
    url = parse_url(text, "the grant URL")
    base, sep, grant_id = url.text.rpartition("/" + protocol.GRANT_PREFIX)
    if not sep or not GRANT_ID.fullmatch(grant_id):
        raise BadInputError(
            f"{escape(text[:200])} is not a relayed grant URL",
            "a relayed grant URL ends in /g/ and the grant's id",
        )
    return RelayedGrantUrl(base + "/", grant_id)


MAX_ANSWER_BYTES = 64 * 1024
"""The most read of a relay's JSON answer or error (the relay is not trusted)."""


@dataclass(frozen=True)
class Answer:
    """A relay's answer: its status code and its body, read up to a cap."""

    status: int
    body: bytes


def _send(
    client: httpx.Client,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    limit: int = MAX_ANSWER_BYTES,
) -> Answer:
    """One request; the body of a 200 answer is read up to ``limit``, others up to 64 KiB."""
    import httpx

    try:
        with client.stream(method, url, content=body, headers=headers) as response:
            cap = limit if response.status_code == 200 else MAX_ANSWER_BYTES
            return Answer(response.status_code, _capped(response.iter_bytes(), cap))
    except httpx.HTTPError:
        raise NetworkError(
            "the relay could not be reached or broke off", "check the URL and your connection"
        ) from None


def _capped(parts: Iterator[bytes], limit: int) -> bytes:
    data = bytearray()
    for part in parts:
        data += part
        if len(data) > limit:
            raise BadInputError("the relay's answer is larger than it can be")
    return bytes(data)


def _signed(
    client: httpx.Client,
    identity: keys.Identity,
    method: str,
    url: str,
    body: bytes,
    now: int,
    limit: int = MAX_ANSWER_BYTES,
) -> Answer:
    target = parse_url(url, "the relay URL").target
    header = protocol.sign_request(identity, method, target, body, now)
    return _send(client, method, url, body, {"Authorization": header}, limit)


def _answer(answer: Answer, what: str) -> dict[str, Any]:
    try:
        value = jsonutil.loads(answer.body, what=what)
    except jsonutil.JsonInputError:
        value = None
    if not isinstance(value, dict):
        raise NetworkError(f"the relay's answer to {what} is not a JSON object")
    return value


def _refused(answer: Answer, what: str) -> NetworkError:
    detail = ""
    try:
        message = jsonutil.loads(answer.body, what="the relay's error").get("error")
        if isinstance(message, str):
            detail = f": {escape(message[:200])}"
    except Exception:  # any unreadable body: the status code says enough
        detail = ""
    return NetworkError(f"the relay refused {what} (HTTP {answer.status}{detail})")


def upload(
    client: httpx.Client, identity: keys.Identity, relay_url: str, grant: bytes, now: int
) -> dict[str, Any]:
    """Upload a grant file the patient issued; the relay's answer (its ``url`` among it)."""
    base = relay_base(relay_url)
    response = _signed(client, identity, "POST", base + protocol.API_GRANTS, grant, now)
    if response.status != 201:
        raise _refused(response, "the grant")
    answer = _answer(response, "the upload")
    url = answer.get("url")
    if not isinstance(url, str) or not url.startswith(base):
        raise NetworkError("the relay's answer names no URL for the grant")
    parse_grant_url(url)
    return answer


def withdraw(
    client: httpx.Client, identity: keys.Identity, relay_url: str, grant_id: str, now: int
) -> None:
    """Delete a relayed grant from the relay (NotFoundError if it has no such grant of ours)."""
    base = relay_base(relay_url)
    url = f"{base}{protocol.API_GRANTS}/{grant_id}"
    response = _signed(client, identity, "DELETE", url, b"", now)
    if response.status == 404:
        raise NotFoundError("the relay has no such grant of yours")
    if response.status != 200:
        raise _refused(response, "the deletion")


def fetch(client: httpx.Client, identity: keys.Identity, url: str, now: int) -> bytes:
    """A relayed grant's file, for its recipient ``identity``: challenge, then signed fetch."""

    where = parse_grant_url(url)
    not_here = NotFoundError(
        "the relay does not give this grant to you",
        "it may be unknown, expired, revoked, or addressed to another DID",
    )
    response = _send(client, "GET", where.url + "/challenge", b"", {})
    if response.status == 404:
        raise not_here
    if response.status != 200:
        raise _refused(response, "a challenge")
    nonce = _answer(response, "the challenge").get("nonce")
    if not isinstance(nonce, str) or not GRANT_ID.fullmatch(nonce):
        raise NetworkError("the relay's challenge is malformed")
    body = json.dumps({"nonce": nonce}).encode("utf-8")
    response = _signed(client, identity, "POST", where.url, body, now, MAX_GRANT_DOWNLOAD)
    if response.status == 404:
        raise not_here
    if response.status != 200:
        raise _refused(response, "the grant")
    return response.body
