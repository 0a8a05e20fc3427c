"""did:web recipients: resolve a DID document over HTTPS and find its X25519 key-agreement key.

Spec: the did:web method (w3c-ccg/did-method-web). ``did:web:example.org`` resolves to
``https://example.org/.well-known/did.json``; ``did:web:example.org:staff:lee`` to
``https://example.org/staff/lee/did.json``; a port is written percent-encoded
(``did:web:localhost%3A8443``). Only HTTPS, no redirects, at most 100 KiB.

A grant to a did:web recipient is sealed to the first usable ``keyAgreement`` key of the
document: X25519KeyAgreementKey2019 (base58), X25519KeyAgreementKey2020 or Multikey
(multibase, multicodec 0xec01), or a JsonWebKey(2020) with ``crv: X25519``. A healthwallet user
publishes such a document with ``healthwallet id --did-document`` (see ``document_for``).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nacl import bindings

from . import jsonutil, keys, limits
from .errors import BadInputError, UsageError

if TYPE_CHECKING:  # http.client and ssl load only when a URL is fetched
    from .httpfetch import Fetcher

PREFIX: Final = "did:web:"
MAX_DOCUMENT_BYTES: Final = 100 * 1024
MAX_DID_CHARS: Final = limits.MAX_DID_CHARS
_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_HINT = "a did:web looks like did:web:clinic.example or did:web:clinic.example:staff:lee"
DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
ED25519_2020_CONTEXT: Final = "https://w3id.org/security/suites/ed25519-2020/v1"
X25519_2020_CONTEXT: Final = "https://w3id.org/security/suites/x25519-2020/v1"


@dataclass(frozen=True)
class KeyAgreement:
    """The key a grant to a did:web recipient is sealed to."""

    did: str
    key_id: str
    x25519_public: bytes


def is_did_web(did: object) -> bool:
    """True when ``did`` is a well-formed did:web."""
    try:
        document_url(did)
    except UsageError:
        return False
    return True


def document_url(did: object) -> str:
    """The HTTPS URL of a did:web's DID document; UsageError if ``did`` is not a did:web."""
    if not isinstance(did, str) or not did.startswith(PREFIX) or len(did) > MAX_DID_CHARS:
        raise UsageError("not a did:web", _HINT)
    host, *path = did[len(PREFIX) :].split(":")
    name, colon, port = urllib.parse.unquote(host).partition(":")
    if not _HOST.fullmatch(name) or "%" in host.upper().replace("%3A", "", 1):
        raise UsageError("not a did:web: the domain name is not valid", _HINT)
    if all(label.isdigit() for label in name.split(".")):
        raise UsageError("not a did:web: the method names a domain, not an IP address", _HINT)
    if colon and not (port.isdigit() and 0 < int(port) < 65536 and not port.startswith("0")):
        raise UsageError("not a did:web: the port is not valid", _HINT)
    if any(not _SEGMENT.fullmatch(segment) or segment in (".", "..") for segment in path):
        raise UsageError("not a did:web: a path segment is not valid", _HINT)
    authority = f"{name}:{port}" if port else name
    return f"https://{authority}/" + ("/".join(path) if path else ".well-known") + "/did.json"


def resolve_key_agreement(did: str, *, transport: Fetcher | None = None) -> KeyAgreement:
    """Fetch ``did``'s document and return its first usable X25519 key-agreement key.

    UsageError for a malformed did:web, NetworkError when the document cannot be fetched,
    BadInputError when it is not a DID document for ``did`` or has no usable key. The fetch
    goes through the guarded fetcher ``transport`` (strict by default: public https only).
    """
    from .httpfetch import fetch_document

    url = document_url(did)
    raw = fetch_document(
        url,
        "DID document",
        fetcher=transport,
        max_bytes=MAX_DOCUMENT_BYTES,
        accept="application/did+json, application/json",
    )
    try:
        document = jsonutil.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInputError(f"the DID document at {url} is not JSON") from None
    return key_agreement_of(document, did)


def key_agreement_of(document: object, did: str) -> KeyAgreement:
    """The first usable X25519 key-agreement key of a DID document for ``did``."""
    if not isinstance(document, dict) or document.get("id") != did:
        raise BadInputError(
            f"the DID document for {did} is not about {did}",
            "its `id` must be the DID itself",
        )
    entries = document.get("keyAgreement")
    if not isinstance(entries, list):
        entries = []
    for entry in entries:
        method = _dereference(entry, document, did)
        if method is None:
            continue
        public = _x25519_of(method)
        if public is not None:
            return KeyAgreement(did, str(method["id"]), public)
    raise BadInputError(
        f"the DID document for {did} has no usable X25519 keyAgreement key",
        "the recipient publishes one with `healthwallet id --did-document`",
    )


def _dereference(entry: object, document: Mapping[str, Any], did: str) -> Mapping[str, Any] | None:
    if isinstance(entry, dict):
        method = entry
    elif isinstance(entry, str):
        wanted = did + entry if entry.startswith("#") else entry
        methods = document.get("verificationMethod")
        found = [
            m
            for m in (methods if isinstance(methods, list) else [])
            if isinstance(m, dict) and m.get("id") in (wanted, entry)
        ]
        if not found:
            return None
        method = found[0]
    else:
        return None
    method_id = method.get("id")
    if not isinstance(method_id, str):
        return None
    if method_id.startswith("#"):
        method = {**method, "id": did + method_id}
    elif not method_id.startswith(did + "#"):
        return None  # a key controlled elsewhere is not this recipient's
    return method


_MAX_KEY_TEXT = 100  # a 32-byte key in any of the encodings is far shorter


def _x25519_of(method: Mapping[str, Any]) -> bytes | None:
    kind = method.get("type")
    raw: bytes | None = None
    texts = (method.get("publicKeyBase58"), method.get("publicKeyMultibase"))
    if any(isinstance(text, str) and len(text) > _MAX_KEY_TEXT for text in texts):
        return None  # and base58 of a long text would cost quadratic time
    try:
        if kind == "X25519KeyAgreementKey2019" and isinstance(method.get("publicKeyBase58"), str):
            raw = keys.b58decode(method["publicKeyBase58"])
        elif kind in ("X25519KeyAgreementKey2020", "Multikey"):
            encoded = method.get("publicKeyMultibase")
            if isinstance(encoded, str) and encoded.startswith("z"):
                decoded = keys.b58decode(encoded[1:])
                if decoded[:2] == keys.X25519_PUB_PREFIX:
                    raw = decoded[2:]
        elif kind in ("JsonWebKey2020", "JsonWebKey"):
            jwk = method.get("publicKeyJwk")
            if isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "X25519":
                if isinstance(jwk.get("x"), str) and "d" not in jwk:
                    raw = keys.b64url_decode(jwk["x"])
    except ValueError:
        return None
    if raw is None or len(raw) != 32 or not _usable_point(raw):
        return None
    return raw


def _usable_point(public: bytes) -> bool:
    """False for a low-order point, with which every sealed key would be readable by anyone."""
    try:
        bindings.crypto_scalarmult(b"\x01" * 31 + b"\x40", public)
    except Exception:
        return False
    return True


def document_for(did: str, identity_did: str) -> dict[str, Any]:
    """The DID document a healthwallet user hosts to receive grants at ``did``.

    It names the wallet's Ed25519 key (for authentication) and the X25519 key derived from it
    (for key agreement), so grants to ``did`` open with this wallet.
    """
    document_url(did)
    ed25519 = keys.ed25519_from_did(identity_did)
    x25519 = keys.x25519_public_from_did(identity_did)
    signing = f"{did}#key-1"
    agreement = f"{did}#key-2"
    return {
        "@context": [DID_CONTEXT, ED25519_2020_CONTEXT, X25519_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": signing,
                "type": "Ed25519VerificationKey2020",
                "controller": did,
                "publicKeyMultibase": "z" + keys.b58encode(keys.ED25519_PUB_PREFIX + ed25519),
            }
        ],
        "authentication": [signing],
        "assertionMethod": [signing],
        "keyAgreement": [
            {
                "id": agreement,
                "type": "X25519KeyAgreementKey2020",
                "controller": did,
                "publicKeyMultibase": "z" + keys.b58encode(keys.X25519_PUB_PREFIX + x25519),
            }
        ],
    }
