"""Per-patient, per-study pseudonym keys: the HMAC key and the date shift."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from healthwallet.errors import UsageError

# HKDF salt and labels: fixed strings so the same secret and study always give the same keys.
_SALT = b"healthwallet/deid/v1"
_HASH_LABEL = b"cryptohash"
_SHIFT_LABEL = b"dateshift"

MAX_DATE_SHIFT_DAYS = 50
"""Dates move by 1..50 days, earlier or later (the anonymizer's 100-day window, never 0)."""

MIN_SECRET_BYTES = 16


def _hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    # RFC 5869 §2.2 (extract) and §2.3 (expand) with SHA-256.
    prk = hmac.new(_SALT, secret, hashlib.sha256).digest()
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _info(label: bytes, study_id: str) -> bytes:
    study = study_id.encode("utf-8")
    # Length-prefixed so no (label, study) pair can collide with another.
    return len(label).to_bytes(2, "big") + label + len(study).to_bytes(2, "big") + study


@dataclass(frozen=True)
class PseudonymKeys:
    """The keys one patient uses for one study: an HMAC key and a date shift in days."""

    study_id: str
    hash_key: bytes = field(repr=False)
    date_shift_days: int = field(repr=False)
    _pads: tuple[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # RFC 2104 HMAC with the key's inner and outer hash states computed once: the
        # engine hashes every id and reference, and the key setup would dominate.
        block = self.hash_key.ljust(64, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        object.__setattr__(self, "_pads", (inner, outer))

    def hmac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of `message` under this study's hash key."""
        inner, outer = self._pads
        inner = inner.copy()
        inner.update(message)
        outer = outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    @classmethod
    def derive(cls, secret: bytes, study_id: str) -> PseudonymKeys:
        """Derive the keys for `study_id` from a per-patient secret (deterministic)."""
        if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
            raise UsageError(f"the pseudonym secret must be at least {MIN_SECRET_BYTES} bytes")
        if not isinstance(study_id, str) or not study_id.strip():
            raise UsageError("the study id must be a non-empty string")
        secret = bytes(secret)
        hash_key = _hkdf_sha256(secret, _info(_HASH_LABEL, study_id))
        shift_seed = int.from_bytes(_hkdf_sha256(secret, _info(_SHIFT_LABEL, study_id), 8), "big")
        magnitude = 1 + shift_seed % MAX_DATE_SHIFT_DAYS
        sign = -1 if (shift_seed >> 32) & 1 else 1
        return cls(study_id=study_id, hash_key=hash_key, date_shift_days=sign * magnitude)
