"""The relay's settings and documented limits (docs/relay.md, "Limits")."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MIB: Final = 1 << 20

MAX_UPLOAD_BYTES: Final = 16 * MIB
"""Largest management request body (a link's files, as JWE, in JSON)."""
MAX_FILES_PER_LINK: Final = 50
MAX_LINKS_PER_PATIENT: Final = 200
"""Unrevoked links one patient DID may hold on a relay."""
REQUESTS_PER_SECOND: Final = 10.0
"""Sustained requests per second per client IP address (a token bucket)."""
BURST: Final = 30
"""Requests a client IP may send at once before the per-second rate applies."""
HASH_WORKERS: Final = 2
"""Passcode checks (Argon2id) that may run at once; more get 429 with Retry-After."""
MAX_MANIFEST_REQUEST_BYTES: Final = 4096
MAX_RECIPIENT_CHARS: Final = 200
MAX_PASSCODE_CHARS: Final = 256
DEFAULT_PASSCODE_ATTEMPTS: Final = 10
MAX_PASSCODE_ATTEMPTS: Final = 100
LOCATION_SECONDS: Final = 3600
"""How long a manifest's ``location`` URL lives (the SHL spec's ceiling: one hour)."""
DEFAULT_EMBEDDED_MAX: Final = 16 * 1024
"""Largest file embedded when the request names no ``embeddedLengthMax``."""

PASSCODE_OPSLIMIT: Final = 2  # libsodium's argon2id OPSLIMIT_INTERACTIVE
PASSCODE_MEMLIMIT: Final = 64 * 1024 * 1024  # libsodium's argon2id MEMLIMIT_INTERACTIVE
"""Argon2id cost of a stored passcode hash (2 passes, 64 MiB): the guessing is bounded by the
attempt budget, the cost keeps a stolen store from being cheap to search."""


def passcode_cost() -> tuple[int, int]:
    """Argon2id (opslimit, memlimit) for new passcode hashes (cheap only inside tests)."""
    from nacl import pwhash  # libsodium loads only where a passcode is hashed

    from .. import keystore

    if keystore.insecure_test_kdf():
        return pwhash.argon2id.OPSLIMIT_MIN, pwhash.argon2id.MEMLIMIT_MIN
    return PASSCODE_OPSLIMIT, PASSCODE_MEMLIMIT


@dataclass(frozen=True)
class Limits:
    """The bounds one relay enforces (defaults above; `relay serve` flags change them)."""

    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_files_per_link: int = MAX_FILES_PER_LINK
    max_links_per_patient: int = MAX_LINKS_PER_PATIENT
    requests_per_second: float = REQUESTS_PER_SECOND
    burst: int = BURST
    hash_workers: int = HASH_WORKERS


@dataclass(frozen=True)
class RelayConfig:
    """Who may create links, where the relay is reached, and its limits, clock and randomness."""

    public_url: str
    allowed_patients: frozenset[str] = frozenset()
    open_registration: bool = False
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.time
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    allow_local_urls: bool = False
    """Fetch status lists of relayed grants from loopback too (tests, self-hosting)."""

    def may_create(self, did: str) -> bool:
        """Whether ``did`` may create links here."""
        return self.open_registration or did in self.allowed_patients
