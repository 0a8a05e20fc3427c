"""Looking for identifiers in what a file or an output shows.

Random material (ciphertext, base64 signatures and JWTs, hex pseudonyms) holds any short string
now and then by chance: a three-letter city like "Ely" sits in a few KiB of base64 about once in a
hundred runs. So the checks here read a container file the way an attacker would (the header as
text, every JWT decoded, the ciphertext set aside once its length is accounted for), and a short
secret counts only where it stands alone, the way a value shows up in JSON or in a sentence.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable
from typing import Any

# Shorter secrets, and all-hex ones up to this length, must stand alone to count.
SHORT = 8
HEX_SHORT = 12
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAGICS = (b"healthwallet-share/v1\n", b"healthwallet-grant/v1\n")


def _stands_alone(secret: str, text: str) -> bool:
    pattern = rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
    return re.search(pattern, text) is not None


def leaked(secrets: Iterable[str], text: str) -> list[str]:
    """The secrets found in ``text``: long ones anywhere, short ones standing alone."""
    found = []
    for secret in secrets:
        short = len(secret) < SHORT or (
            len(secret) <= HEX_SHORT and re.fullmatch(r"[0-9a-fA-F]+", secret) is not None
        )
        if (_stands_alone(secret, text) if short else secret in text) and secret not in found:
            found.append(secret)
    return found


def _b64url(segment: str) -> str:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("latin-1")


def decode_jwts(text: str) -> str:
    """``text`` with the header and payload of every compact JWT in it appended, decoded."""
    parts = [text]
    for token in _JWT.findall(text):
        head, payload, _signature = token.split(".")
        parts += [_b64url(head), _b64url(payload)]
    return "\n".join(parts)


def container_text(data: bytes) -> str:
    """What a grant or share file shows without its keys: the header with JWTs decoded.

    The payload after the header must be exactly the ciphertext the envelope declares, so
    nothing can hide there; it is left out of the text because it is random bytes."""
    magic = next((m for m in _MAGICS if data.startswith(m)), None)
    assert magic is not None, "not a grant or share file"
    (length,) = struct.unpack(">I", data[len(magic) : len(magic) + 4])
    start = len(magic) + 4
    header_bytes = data[start : start + length]
    header: dict[str, Any] = json.loads(header_bytes)
    declared = sum(int(entry["length"]) for entry in header["envelope"]["records"])
    assert len(data) == start + length + declared, "bytes beyond the declared ciphertext"
    return decode_jwts(header_bytes.decode("utf-8"))
