"""Per-study identities, status slots, coarse times and padding: one patient's shares for two
studies carry nothing in common (docs/format-share.md, "Unlinkability across studies").

A research consent is signed by a key derived from the wallet's seed and the study id, owns a
status list of its own under the patient's hostable status location, carries day-rounded times,
and seals a dataset padded to a power of two. This module is pure: no I/O.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .errors import UsageError
from .keys import Identity

# BLAKE2b personalisation (16 bytes at most) for the per-study seed: distinct from the vault
# key's and the de-identification secret's contexts, so no derived key equals another.
_STUDY_SEED_CONTEXT = b"hw-study-key-v1"

# Per-study status list slots are drawn from the six-digit indexes of a 131 072-entry list, so
# every consent's status entry has the same length (the header length then says nothing).
INDEX_LOW = 100_000
INDEX_HIGH = 131_072
INDEX_BITS = 15  # 2**15 = 32768 >= INDEX_HIGH - INDEX_LOW: rejection sampling stays uniform
LIST_NAME_BYTES = 16

# The dataset plaintext is padded to a power of two, at least MIN_PADDED_BYTES, so its length
# says only which size class the data falls in. The padding is JSON whitespace at the end of the
# lines, so every NDJSON reader (and every JSON parser) reads a padded dataset as it is.
MIN_PADDED_BYTES = 64 * 1024
PAD_BYTE = b" "

RandomBytes = Callable[[int], bytes]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

__all__ = [
    "INDEX_HIGH",
    "INDEX_LOW",
    "MIN_PADDED_BYTES",
    "coarse_expiry",
    "coarse_issued",
    "draw_index",
    "new_list_url",
    "pad_dataset",
    "padded_length",
    "require_hostable",
    "study_identity",
]


def study_identity(identity: Identity, study: str) -> Identity:
    """The identity that signs ``study``'s consents: BLAKE2b-256 keyed by the seed, per study."""
    if not isinstance(study, str) or not study:
        raise UsageError("the study id must be a non-empty string")
    seed = hashlib.blake2b(
        study.encode("utf-8"),
        key=identity.seed,
        person=_STUDY_SEED_CONTEXT.ljust(16, b"\0"),
        digest_size=32,
    ).digest()
    return Identity(seed)


def require_hostable(base_url: str) -> None:
    """UsageError unless consents' status lists can live at ``base_url`` for others to read.

    https://, or http:// on this machine's loopback (tests, a local relay); never file://,
    whose path names the wallet home and often the user.
    """
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname in _LOOPBACK:
        return
    raise UsageError(
        "research shares need a hostable status location (no `status-url` is set); a local "
        "path would name your wallet home and link your shares",
        "set one with `healthwallet config set status-url https://HOST/PATH/`, then host what "
        "`healthwallet status publish` writes there",
    )


def new_list_url(base_url: str, random_bytes: RandomBytes) -> str:
    """A fresh status list URL under ``base_url`` with a random name (no counter, no study)."""
    return f"{base_url}{random_bytes(LIST_NAME_BYTES).hex()}.json"


def draw_index(random_bytes: RandomBytes) -> int:
    """A uniform index in [INDEX_LOW, INDEX_HIGH): six decimal digits, always."""
    span = INDEX_HIGH - INDEX_LOW
    while True:
        draw = int.from_bytes(random_bytes(2), "big") >> (16 - INDEX_BITS)
        if draw < span:
            return INDEX_LOW + draw


def coarse_issued(now: datetime) -> datetime:
    """The consent's issuance time: 00:00:00 UTC of the day ``now`` falls on."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def coarse_expiry(expires: datetime, now: datetime) -> datetime:
    """``expires`` rounded down to 00:00 UTC when that is still a day or more after ``now``."""
    rounded = coarse_issued(expires)
    return rounded if rounded - now.astimezone(UTC) >= timedelta(days=1) else expires


def padded_length(length: int) -> int:
    """The padded dataset length: the next power of two, and at least MIN_PADDED_BYTES."""
    padded = MIN_PADDED_BYTES
    while padded < length:
        padded *= 2
    return padded


def pad_dataset(ndjson: bytes) -> bytes:
    """NDJSON padded to :func:`padded_length` with spaces before each line's LF, spread evenly
    over the lines (so no line grows by more than its share; JSON ignores the spaces)."""
    lines = ndjson.split(b"\n")[:-1]
    if not lines or not ndjson.endswith(b"\n"):
        raise ValueError("a dataset is NDJSON: one or more lines, each ending in LF")
    extra = padded_length(len(ndjson)) - len(ndjson)
    each, rest = divmod(extra, len(lines))
    return b"".join(
        line + PAD_BYTE * (each + (1 if number < rest else 0)) + b"\n"
        for number, line in enumerate(lines)
    )
