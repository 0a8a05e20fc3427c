"""Identity keys: the 32-byte seed and everything derived from it.

One secret (the seed) gives the Ed25519 signing key, its ``did:key``, the X25519
key-agreement key (libsodium's Ed25519→Curve25519 map, as the did:key spec's
"derive encryption key" step does), and the vault key that wraps record keys.
This module is pure: no I/O, no didkit.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from nacl import bindings
from nacl.signing import SigningKey, VerifyKey

from . import limits
from .errors import UsageError

SEED_BYTES = 32
# Multicodec varint prefixes (multicodec table: ed25519-pub 0xed, x25519-pub 0xec).
ED25519_PUB_PREFIX = b"\xed\x01"
X25519_PUB_PREFIX = b"\xec\x01"
DID_KEY_PREFIX = "did:key:"

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}

# Context strings for subkeys derived from the seed (BLAKE2b keyed, like crypto_kdf).
_VAULT_KEY_CONTEXT = b"hw-vault-key-v1"
_DEID_SECRET_CONTEXT = b"hw-deid-sec-v1"  # at most 16 bytes: BLAKE2b's personalisation


def b58encode(raw: bytes) -> str:
    """Encode bytes in base58btc (Bitcoin alphabet)."""
    number = int.from_bytes(raw, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str, max_chars: int = limits.MAX_BASE58_CHARS) -> bytes:
    """Decode base58btc; ValueError on a character outside the alphabet or a text too long.

    The decoding is quadratic in the length, so the length is capped before any work.
    """
    limits.check_text_length(text, max_chars, "base58 text")
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError("not base58btc")
        number = number * 58 + _B58_INDEX[char]
    pad = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * pad + body


def b64url(raw: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def did_from_ed25519(public_key: bytes) -> str:
    """did:key for an Ed25519 public key (did:key spec, multicodec 0xed + base58btc)."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return DID_KEY_PREFIX + "z" + b58encode(ED25519_PUB_PREFIX + public_key)


def ed25519_from_did(did: str) -> bytes:
    """The Ed25519 public key inside a did:key; UsageError if it is not one."""
    hint = "a recipient is a did:key of an Ed25519 key, starting with did:key:z6Mk"
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX + "z"):
        raise UsageError("not an Ed25519 did:key", hint)
    bare = did.partition("#")[0]
    if len(did) > limits.MAX_DID_URL_CHARS or len(bare) != limits.ED25519_DID_KEY_CHARS:
        raise UsageError("not an Ed25519 did:key: wrong length", hint)  # checked before decoding
    fragment = bare[len(DID_KEY_PREFIX) + 1 :]
    try:
        raw = b58decode(fragment)
    except ValueError:
        raise UsageError("not an Ed25519 did:key: bad base58", hint) from None
    if len(raw) != 34 or raw[:2] != ED25519_PUB_PREFIX:
        raise UsageError("not an Ed25519 did:key: wrong key type or length", hint)
    public_key = raw[2:]
    try:
        VerifyKey(public_key)
        bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except Exception:
        raise UsageError("not an Ed25519 did:key: not a valid curve point", hint) from None
    return public_key


def is_did_key(did: str) -> bool:
    """True when ``did`` is a well-formed Ed25519 did:key."""
    try:
        ed25519_from_did(did)
    except UsageError:
        return False
    return True


def verification_method(did: str) -> str:
    """The verification method id of a did:key (DID URL with the key as fragment)."""
    return did + "#" + did[len(DID_KEY_PREFIX) :]


def x25519_public_from_did(did: str) -> bytes:
    """The X25519 key-agreement public key derived from a did:key's Ed25519 key."""
    return bytes(bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_from_did(did)))


def x25519_did_from_public(public_key: bytes) -> str:
    """did:key form (z6LS…) of an X25519 public key, as the did:key spec writes it."""
    return DID_KEY_PREFIX + "z" + b58encode(X25519_PUB_PREFIX + public_key)


def _subkey(seed: bytes, context: bytes) -> bytes:
    return hashlib.blake2b(
        b"", key=seed, person=context.ljust(16, b"\0")[:16], digest_size=32
    ).digest()


@dataclass(frozen=True)
class Identity:
    """The patient's (or clinician's, or research group's) keys, all from one seed."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise ValueError("an identity seed is 32 bytes")

    @property
    def signing_key(self) -> SigningKey:
        """The Ed25519 signing key."""
        return SigningKey(self.seed)

    @property
    def public_key(self) -> bytes:
        """The Ed25519 public key (32 bytes)."""
        return bytes(self.signing_key.verify_key)

    @property
    def did(self) -> str:
        """The did:key of this identity."""
        return did_from_ed25519(self.public_key)

    @property
    def verification_method(self) -> str:
        """The DID URL of the signing key."""
        return verification_method(self.did)

    @property
    def x25519_public(self) -> bytes:
        """X25519 public key for things sent to this identity."""
        return bytes(bindings.crypto_sign_ed25519_pk_to_curve25519(self.public_key))

    @property
    def x25519_private(self) -> bytes:
        """X25519 private key (libsodium conversion of the Ed25519 secret key)."""
        secret = bytes(self.signing_key._signing_key)  # seed || public key, libsodium layout
        return bytes(bindings.crypto_sign_ed25519_sk_to_curve25519(secret))

    @property
    def vault_key(self) -> bytes:
        """Key that wraps every record's content key."""
        return _subkey(self.seed, _VAULT_KEY_CONTEXT)

    @property
    def deid_secret(self) -> bytes:
        """Per-patient secret the research pseudonym keys are derived from (never leaves)."""
        return _subkey(self.seed, _DEID_SECRET_CONTEXT)

    def sign(self, message: bytes) -> bytes:
        """Detached Ed25519 signature of ``message``."""
        return bytes(self.signing_key.sign(message).signature)

    def jwk(self) -> str:
        """The private JWK (OKP/Ed25519) as JSON text, for didkit. Never log it."""
        return json.dumps(
            {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.public_key), "d": b64url(self.seed)}
        )


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    try:
        VerifyKey(public_key).verify(message, signature)
    except Exception:
        return False
    return True
