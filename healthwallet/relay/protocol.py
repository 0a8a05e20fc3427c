"""The relay's patient-side wire protocol: paths, and DID-signed management requests.

This is the contract between ``healthwallet link`` (client) and ``healthwallet relay serve``
(server). The SHL side of the relay (manifest ``POST``, ``GET ?recipient=``, file locations)
follows the SMART Health Links specification; only the management API below is ours.

A management request carries one header::

    Authorization: HW-Sig did="did:key:z6Mk…", ts="1733300000", nonce="<b64url 16 bytes>",
                   sig="<b64url Ed25519 signature>"

The signature covers, joined by ``\\n``: ``hw-relay-v1``, the method in upper case, the request
target (path plus ``?query`` exactly as sent), ``ts``, ``nonce`` and the lower-case hex SHA-256
of the body. A server accepts ``ts`` within ``MAX_CLOCK_SKEW`` seconds of its clock and each
``(did, nonce)`` once within that window. The owner of a link is the DID that created it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .. import keys

SCHEME = "HW-Sig"
DOMAIN = "hw-relay-v1"
MAX_CLOCK_SKEW = 300  # seconds either side
NONCE_BYTES = 16
MAX_HEADER_CHARS = 1024

# Paths under the relay's base URL (the ``--relay URL`` a patient gives).
MANIFEST_PREFIX = "m/"  # SHL manifest URL: {base}m/{id}, id = 43 chars of base64url (256 bits)
FILE_PREFIX = "f/"  # single file / location URLs: {base}f/{token}
API_LINKS = "api/v1/links"  # POST create, GET list; {API_LINKS}/{id}: PUT update, DELETE revoke
API_GRANTS = "api/v1/grants"  # DID-bound grant relay (healthwallet grant --via)
GRANT_PREFIX = "g/"  # {base}g/{id}: challenge + signed fetch of a relayed grant

_PARAM = re.compile(r'\s*([a-z]+)="([^"\\]*)"\s*')


class AuthError(ValueError):
    """A management request whose signature header is missing, malformed or wrong."""


@dataclass(frozen=True)
class SignedRequest:
    """The parsed ``Authorization`` header of a management request."""

    did: str
    ts: int
    nonce: str
    sig: bytes


def signing_input(method: str, target: str, ts: int, nonce: str, body: bytes) -> bytes:
    """The exact bytes a management request's signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([DOMAIN, method.upper(), target, str(ts), nonce, digest]).encode("utf-8")


def sign_request(
    identity: keys.Identity,
    method: str,
    target: str,
    body: bytes,
    now: int,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header value for a request by ``identity`` at unix time ``now``."""
    nonce = nonce or keys.b64url(secrets.token_bytes(NONCE_BYTES))
    sig = identity.sign(signing_input(method, target, now, nonce, body))
    return f'{SCHEME} did="{identity.did}", ts="{now}", nonce="{nonce}", sig="{keys.b64url(sig)}"'


def parse_header(value: str | None) -> SignedRequest:
    """Parse an ``Authorization`` header; AuthError when it is not a well-formed HW-Sig."""
    if not value or len(value) > MAX_HEADER_CHARS or not value.startswith(SCHEME + " "):
        raise AuthError("missing or malformed signature header")
    params: dict[str, str] = {}
    for part in value[len(SCHEME) + 1 :].split(","):
        match = _PARAM.fullmatch(part)
        if not match or match.group(1) in params:
            raise AuthError("malformed signature header")
        params[match.group(1)] = match.group(2)
    if set(params) != {"did", "ts", "nonce", "sig"}:
        raise AuthError("signature header needs did, ts, nonce and sig")
    if not params["ts"].isdigit() or len(params["ts"]) > 12:
        raise AuthError("bad timestamp")
    nonce = params["nonce"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", nonce):
        raise AuthError("bad nonce")
    if not keys.is_did_key(params["did"]):
        raise AuthError("signer is not an Ed25519 did:key")
    try:
        sig = keys.b64url_decode(params["sig"])
    except ValueError:
        raise AuthError("bad signature encoding") from None
    if len(sig) != 64:
        raise AuthError("bad signature length")
    return SignedRequest(params["did"], int(params["ts"]), nonce, sig)


def verify_request(
    header: str | None,
    method: str,
    target: str,
    body: bytes,
    now: int,
    nonce_seen: Callable[[str, str, int], bool],
) -> str:
    """The signer's DID when the request is fresh and correctly signed; AuthError otherwise.

    ``nonce_seen(did, nonce, expires_at)`` records the nonce and returns True when it was
    already used (a replay); the server keeps it at least until ``expires_at``.
    """
    request = parse_header(header)
    if abs(now - request.ts) > MAX_CLOCK_SKEW:
        raise AuthError("request timestamp too far from the relay's clock")
    message = signing_input(method, target, request.ts, request.nonce, body)
    if not keys.verify_signature(keys.ed25519_from_did(request.did), message, request.sig):
        raise AuthError("bad signature")
    if nonce_seen(request.did, request.nonce, request.ts + MAX_CLOCK_SKEW):
        raise AuthError("replayed request")
    return request.did
