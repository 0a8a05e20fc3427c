"""SMART Health Cards inside a link: JWS (ES256 over the raw-DEFLATEd payload) checked against
the issuer's keys, from a trust directory the user gives or the issuer's
``/.well-known/jwks.json`` (SMART Health Cards framework, "Verifying a card").

A card names its issuer (``iss``, an https URL). With a directory (the VCI snapshot shape:
``issuerInfo[].issuer.{iss,name}`` and ``issuerInfo[].keys``), only a listed issuer is trusted
and it is named as the directory names it. Without one, the issuer's own key set is fetched
with the guarded fetcher: the signature then proves who published the card, not that anyone
vouches for them, and the result says so.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .. import jsonutil
from ..errors import BadInputError, VerificationError
from ..httpfetch import Fetcher
from ..termsafe import escape
from ..urls import parse_url

MAX_CARDS: Final = 64
MAX_JWS_CHARS: Final = 1 << 20
MAX_PAYLOAD_BYTES: Final = 4 << 20
MAX_JWKS_BYTES: Final = 256 << 10
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HINT: Final = "the card was changed or is not a SMART Health Card; ask the issuer for a new one"


@dataclass(frozen=True)
class Card:
    """A verified card: who issued it, whether a trust directory lists them, its FHIR Bundle."""

    issuer: str
    issuer_name: str
    listed: bool
    bundle: dict[str, Any]


def _b64(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise BadInputError(f"{what} is not base64url", _HINT)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadInputError(f"{what} is not base64url", _HINT) from None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, MAX_PAYLOAD_BYTES + 1)
    except zlib.error:
        raise BadInputError("a health card's payload is not raw DEFLATE", _HINT) from None
    if len(out) > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail or not inflater.eof:
        raise BadInputError("a health card's payload inflates past its cap or is cut off", _HINT)
    return out


def _public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise VerificationError("the issuer's key is not an EC P-256 key", _HINT)
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise VerificationError("the issuer's key has no coordinates", _HINT)
    xb, yb = _b64(x, "a key's x"), _b64(y, "a key's y")
    if len(xb) != 32 or len(yb) != 32:
        raise VerificationError("the issuer's key has the wrong size", _HINT)
    try:
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()
        ).public_key()
    except ValueError:
        raise VerificationError("the issuer's key is not a point on P-256", _HINT) from None


class TrustDirectory:
    """Issuers and their keys from a directory file (VCI snapshot shape)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.issuers: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        infos = jsonutil.member(document, "issuerInfo", list, "the trust directory")
        for info in jsonutil.items_of(infos, dict, "the trust directory's issuerInfo"):
            issuer = jsonutil.obj(info, "issuer", "a trust directory entry")
            iss = jsonutil.text(issuer, "iss", "a trust directory entry")
            name = jsonutil.optional(issuer, "name", str, "a trust directory entry") or iss
            keys = jsonutil.items_of(info.get("keys", []), dict, "a trust directory entry's keys")
            self.issuers[iss.rstrip("/")] = (name, keys)


def _issuer_keys(
    iss: str, directory: TrustDirectory | None, fetcher: Fetcher
) -> tuple[str, bool, list[dict[str, Any]]]:
    listed = directory.issuers.get(iss) if directory is not None else None
    if directory is not None and listed is None:
        raise VerificationError(
            f"the card's issuer {escape(iss[:200])} is not in the trust directory",
            "import it only if you trust this issuer: run again without --trust-directory",
        )
    if listed is not None and listed[1]:
        return listed[0], True, listed[1]
    parse_url(iss, "the card's issuer", ("https",))
    body = fetcher.get(
        iss + "/.well-known/jwks.json",
        "the issuer's key set",
        max_bytes=MAX_JWKS_BYTES,
        accept="application/json",
    )
    document = jsonutil.load_object(body, "the issuer's key set", error=VerificationError)
    keys = jsonutil.items_of(document.get("keys"), dict, "the issuer's key set", VerificationError)
    name = listed[0] if listed is not None else parse_url(iss, "the card's issuer").host
    return name, listed is not None, keys


def verify_card(jws: str, directory: TrustDirectory | None, fetcher: Fetcher) -> Card:
    """A SMART Health Card JWS checked end to end; VerificationError when it does not hold."""
    if len(jws) > MAX_JWS_CHARS:
        raise BadInputError("a health card is too large", _HINT)
    parts = jws.split(".")
    if len(parts) != 3:
        raise BadInputError("a health card is not a compact JWS", _HINT)
    header = jsonutil.load_object(_b64(parts[0], "a card's header"), "a card's header")
    if header.get("alg") != "ES256" or header.get("zip") != "DEF" or "crit" in header:
        raise VerificationError("a health card is not signed as SMART Health Cards require", _HINT)
    kid = header.get("kid")
    claims = jsonutil.load_object(_inflate(_b64(parts[1], "a card's payload")), "a card")
    iss = jsonutil.text(claims, "iss", "a health card").rstrip("/")
    name, listed, keys = _issuer_keys(iss, directory, fetcher)
    matching = [k for k in keys if k.get("kid") == kid]
    if not matching:
        raise VerificationError("none of the issuer's keys signed this card", _HINT)
    signature = _b64(parts[2], "a card's signature")
    if len(signature) != 64:
        raise VerificationError("a health card's signature has the wrong size", _HINT)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        _public_key(matching[0]).verify(
            der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise VerificationError("a health card's signature does not verify", _HINT) from None
    vc = jsonutil.obj(claims, "vc", "a health card")
    subject = jsonutil.obj(vc, "credentialSubject", "a health card")
    bundle = jsonutil.obj(subject, "fhirBundle", "a health card")
    return Card(iss, name, listed, bundle)


def cards_in(content: bytes) -> list[str]:
    """The JWS strings of an ``application/smart-health-card`` file."""
    document = jsonutil.load_object(content, "a health card file")
    cards = jsonutil.str_list(document, "verifiableCredential", "a health card file")
    if len(cards) > MAX_CARDS:
        raise BadInputError(f"a health card file holds more than {MAX_CARDS} cards")
    return cards
