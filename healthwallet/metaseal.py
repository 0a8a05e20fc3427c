"""Sealing the wallet home's own metadata (audit entries, the grant register) under the seed.

A copy of the wallet home must reveal no more than record counts, sizes and order
(docs/threat-model.md). The audit log and ``grants.sqlite`` name recipients, studies, purposes
and expiries, so each of their values is sealed: XChaCha20-Poly1305 under the metadata key
``MK`` = BLAKE2b-256(key = seed, personalization = ``"hw-meta-seal-v1"``), with associated
data naming the value's kind and position, so a sealed value cannot be moved to another place.

After a key rotation, values sealed under a retired seed still open: a reader tries the current
key first, then each retired one. New values are always sealed under the current key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from . import jsonutil, keys
from .envelope import canonical_json
from .errors import VerificationError
from .stream import open_bytes, seal_bytes

# At most 16 bytes: BLAKE2b's personalisation, as for the vault key.
META_KEY_CONTEXT = b"hw-meta-seal-v1"

RandomBytes = Callable[[int], bytes]


def meta_key(identity: keys.Identity) -> bytes:
    """The metadata sealing key of one identity (distinct from its vault key)."""
    return keys._subkey(identity.seed, META_KEY_CONTEXT)


class MetaSeal:
    """Seals small JSON values under the wallet's metadata key; opens them under any of its keys."""

    def __init__(
        self,
        identity: keys.Identity,
        retired: Sequence[keys.Identity] = (),
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self._keys = [meta_key(identity), *(meta_key(r) for r in reversed(retired))]
        self._random_bytes = random_bytes

    def seal(self, value: Any, associated_data: bytes) -> bytes:
        """``nonce || ciphertext || tag`` of the canonical JSON of ``value``."""
        return seal_bytes(self._keys[0], canonical_json(value), associated_data, self._random_bytes)

    def open(self, sealed: bytes, associated_data: bytes, what: str) -> Any:
        """The JSON value inside ``sealed``; VerificationError naming ``what`` if it was changed."""
        for key in self._keys:
            try:
                plaintext = open_bytes(key, sealed, associated_data)
            except VerificationError:
                continue
            try:
                return jsonutil.loads(plaintext)
            except (ValueError, UnicodeError):
                break
        raise VerificationError(
            f"{what} in the wallet home was changed or damaged",
            "restore the wallet home from a backup (`healthwallet restore`)",
        )
