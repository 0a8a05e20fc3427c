"""SHL files: compact JWE with ``alg: dir`` and ``enc: A256GCM`` (RFC 7516, RFC 7518 §5.3).

The protected header names the file's content type in ``cty`` and, when the plaintext was
compressed, ``zip: DEF`` (raw DEFLATE, RFC 1951). The JWE Encrypted Key is empty (direct
key agreement). A file from a link is hostile: its size is capped before anything is
decoded, the header must be exactly this profile, and inflating stops at a cap so a small
file cannot expand into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import jsonutil, keys
from ..errors import BadInputError, VerificationError

ALG: Final = "dir"
ENC: Final = "A256GCM"
ZIP: Final = "DEF"
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
MAX_HEADER_CHARS: Final = 1024
DEFAULT_MAX_PLAINTEXT: Final = 64 * 1024 * 1024
_HEADER_MEMBERS: Final = frozenset({"alg", "enc", "cty", "zip", "kid"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_CTY = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")
_HINT: Final = "the file is damaged or was not made for this link; ask the sender for a new link"

RandomBytes = Callable[[int], bytes]


class DecompressionBombError(BadInputError):
    """A compressed file that inflates past the cap."""

    default_hint = "the file expands far beyond any record; it was refused unread"


@dataclass(frozen=True)
class Decrypted:
    """A decrypted SHL file: its content type (from ``cty``) and bytes."""

    content_type: str
    content: bytes


def encrypt(
    key: bytes,
    plaintext: bytes,
    content_type: str,
    random_bytes: RandomBytes,
    *,
    compress: bool = True,
) -> str:
    """The compact JWE of ``plaintext`` under ``key`` (32 bytes)."""
    header = {"alg": ALG, "enc": ENC, "cty": content_type}
    if compress:
        header["zip"] = ZIP
        squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
        plaintext = squeezer.compress(plaintext) + squeezer.flush()
    protected = keys.b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))
    iv = random_bytes(IV_BYTES)
    sealed = AESGCM(key).encrypt(iv, plaintext, protected.encode("ascii"))
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return ".".join([protected, "", keys.b64url(iv), keys.b64url(ciphertext), keys.b64url(tag)])


def _part(text: str, name: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise BadInputError(f"a link file's {name} is not base64url", _HINT)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadInputError(f"a link file's {name} is not base64url", _HINT) from None


def _header(protected: str) -> dict[str, object]:
    if len(protected) > MAX_HEADER_CHARS:
        raise BadInputError("a link file's header is too long", _HINT)
    header = jsonutil.load_object(_part(protected, "header"), "a link file's header", hint=_HINT)
    unknown = set(header) - _HEADER_MEMBERS
    if unknown:
        # `crit` and anything else we do not implement: refuse rather than ignore.
        raise BadInputError("a link file's header has members this wallet does not know", _HINT)
    if header.get("alg") != ALG or header.get("enc") != ENC:
        raise BadInputError(
            "a link file is not encrypted as SHL requires (alg dir, enc A256GCM)", _HINT
        )
    cty = header.get("cty")
    if not isinstance(cty, str) or len(cty) > 100 or not _CTY.fullmatch(cty):
        raise BadInputError("a link file does not name its content type (cty)", _HINT)
    if "zip" in header and header["zip"] != ZIP:
        raise BadInputError("a link file is compressed with an unknown method", _HINT)
    return header


def _inflate(data: bytes, max_plaintext: int) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, max_plaintext + 1)
    except zlib.error:
        raise BadInputError("a link file's compressed content is damaged", _HINT) from None
    if len(out) > max_plaintext or inflater.unconsumed_tail:
        raise DecompressionBombError(f"a link file inflates to more than {max_plaintext >> 20} MiB")
    if not inflater.eof:
        raise BadInputError("a link file's compressed content is truncated", _HINT)
    return out


def decrypt(key: bytes, compact: str, *, max_plaintext: int = DEFAULT_MAX_PLAINTEXT) -> Decrypted:
    """The content of a compact JWE under ``key``.

    BadInputError for a malformed file or header, VerificationError when the key does not
    open it (changed, or for another link), DecompressionBombError past ``max_plaintext``.
    """
    # base64url grows by 4/3; deflate can shrink a lot, so the cap on the text is generous.
    if len(compact) > (max_plaintext // 3 + 1) * 4 + MAX_HEADER_CHARS + 64:
        raise BadInputError(f"a link file is larger than {max_plaintext >> 20} MiB", _HINT)
    parts = compact.strip().split(".")
    if len(parts) != 5:
        raise BadInputError("a link file is not a compact JWE (five parts)", _HINT)
    protected, encrypted_key, iv_text, ciphertext_text, tag_text = parts
    header = _header(protected)
    if encrypted_key:
        raise BadInputError("a link file carries an encrypted key (alg dir has none)", _HINT)
    iv, tag = _part(iv_text, "iv"), _part(tag_text, "tag")
    if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
        raise BadInputError("a link file's iv or tag has the wrong length", _HINT)
    ciphertext = _part(ciphertext_text, "ciphertext")
    try:
        plaintext = AESGCM(key).decrypt(iv, ciphertext + tag, protected.encode("ascii"))
    except InvalidTag:
        raise VerificationError(
            "a link file does not open with the link's key", "the file was changed in transit"
        ) from None
    if header.get("zip") == ZIP:
        plaintext = _inflate(plaintext, max_plaintext)
    elif len(plaintext) > max_plaintext:
        raise BadInputError(f"a link file is larger than {max_plaintext >> 20} MiB", _HINT)
    return Decrypted(str(header["cty"]), plaintext)
