"""Caps on what healthwallet will decode or pay for, checked before any work is done.

Base58 decoding is quadratic in the length of its input and Argon2id costs what its header
asks for, so an input read from a file, a credential or a DID document must never pick the
cost. Every identifier is capped by length before it is decoded, and Argon2id parameters are
accepted only up to what healthwallet itself writes, with a little headroom (docs/format.md,
"Limits"). This module is pure: no I/O.
"""

from __future__ import annotations

from typing import Final

from nacl import pwhash

# -- identifiers ----------------------------------------------------------------------------------

ED25519_DID_KEY_CHARS: Final = 56
"""Length of every Ed25519 did:key: ``did:key:z`` and 47 base58 characters (34 bytes)."""

MAX_BASE58_CHARS: Final = 100
"""Longest base58 text decoded. A 34-byte multicodec key is 47 characters; 100 leaves room
for any key healthwallet reads (X25519 in a DID document: 44 or 47) and costs microseconds."""

MAX_DID_CHARS: Final = 500
"""Longest DID read anywhere (a did:web with a path; a did:key is 56)."""

MAX_DID_URL_CHARS: Final = 2 * MAX_DID_CHARS + 1
"""Longest DID URL (``did#fragment``), e.g. a verification method id."""

# -- Argon2id -------------------------------------------------------------------------------------

ARGON2ID_OPSLIMIT: Final = pwhash.argon2id.OPSLIMIT_MODERATE
"""The passes healthwallet writes into a keystore file or backup (3)."""
ARGON2ID_MEMLIMIT: Final = pwhash.argon2id.MEMLIMIT_MODERATE
"""The memory healthwallet writes into a keystore file or backup (256 MiB)."""
MAX_ARGON2ID_OPSLIMIT: Final = ARGON2ID_OPSLIMIT + 1
"""Most passes a file may ask for: what we write, plus one."""
MAX_ARGON2ID_MEMLIMIT: Final = ARGON2ID_MEMLIMIT + ARGON2ID_MEMLIMIT // 4
"""Most memory a file may ask for: what we write, plus a quarter (320 MiB)."""
_TEST_OPSLIMIT: Final = pwhash.argon2id.OPSLIMIT_MIN
_TEST_MEMLIMIT: Final = pwhash.argon2id.MEMLIMIT_MIN


class CostRefused(ValueError):
    """A cost parameter read from a file is out of the accepted range."""


def check_text_length(text: str, limit: int, what: str) -> str:
    """``text`` if it has at most ``limit`` characters; ValueError (naming ``what``) if not."""
    if len(text) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return text


def argon2id_cost(opslimit: object, memlimit: object, *, allow_weaker: bool) -> tuple[int, int]:
    """(opslimit, memlimit) as read from a file, or CostRefused: checked before deriving.

    Only plain integers are read (no bool, float or string). Above the maximum is refused
    always; below what healthwallet writes only when ``allow_weaker`` (the test-only KDF,
    docs/adr/0004-test-only-kdf.md), and never below libsodium's own minimum.
    """
    if (
        isinstance(opslimit, bool)
        or not isinstance(opslimit, int)
        or isinstance(memlimit, bool)
        or not isinstance(memlimit, int)
    ):
        raise CostRefused("has Argon2id limits that are not integers")
    if opslimit > MAX_ARGON2ID_OPSLIMIT or memlimit > MAX_ARGON2ID_MEMLIMIT:
        raise CostRefused("asks for a higher Argon2id cost than healthwallet writes")
    least_ops, least_mem = (
        (_TEST_OPSLIMIT, _TEST_MEMLIMIT) if allow_weaker else (ARGON2ID_OPSLIMIT, ARGON2ID_MEMLIMIT)
    )
    if opslimit < least_ops or memlimit < least_mem:
        raise CostRefused("asks for a weaker Argon2id cost than allowed")
    return opslimit, memlimit
