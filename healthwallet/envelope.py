"""The grant envelope: a content key sealed to the recipient, and records encrypted under it.

Spec: docs/format-grant.md. The envelope header is a small JSON object; the records are
libsodium secretstream (XChaCha20-Poly1305) streams that follow it in the file. Each record
has its own subkeys, derived from the file key, its position and its id, and its position and
id are bound in as associated data, so records cannot be swapped, reordered or moved between
grants. The record's metadata (original file name, media type, salt, size) is sealed under
another subkey and travels in the header. This module does no file-system or network I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from nacl import bindings

from . import jsonutil, stream
from .errors import BadInputError, VerificationError

RandomBytes = Callable[[int], bytes]

FILE_KEY_BYTES = 32
SALT_BYTES = 32
STANZA_TYPE = "X25519-sealedbox"
_SEALEDBOX_BYTES = 32 + 16 + FILE_KEY_BYTES  # ephemeral public key, MAC, file key
MAX_RECORDS = 10_000
MAX_ID_CHARS = 200
MAX_META_BYTES = 8192
MAX_RECORD_BYTES = 1 << 50
MAX_ANCHORS = MAX_RECORDS
# Personalisation strings for the record subkeys (keyed BLAKE2b, as libsodium crypto_kdf).
_DATA_KEY_CONTEXT = b"hwgrant-v1-data\0"
_META_KEY_CONTEXT = b"hwgrant-v1-meta\0"
_AD_PREFIX = b"healthwallet-grant/v1 record\0"
_ID_RE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_ID_CHARS}}}\Z")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")


# -- canonical JSON and strict base64 -----------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8 (RFC 8785 for our values)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _reject_constant(text: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_canonical_json(raw: bytes, what: str) -> Any:
    """Parse JSON that must be exactly in canonical form; BadInputError otherwise."""
    try:
        value = jsonutil.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        again = canonical_json(value)
    except (ValueError, RecursionError, UnicodeError, TypeError):
        raise BadInputError(f"{what} is not valid JSON") from None
    # A JSON text can say the same thing in many ways (escapes, spacing, duplicate keys); only
    # one is allowed, so every byte of the header is covered by a signature or the digest.
    if again != raw:
        raise BadInputError(f"{what} is not in canonical JSON form")
    return value


def b64e(raw: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64d(text: object, what: str) -> bytes:
    """Strict base64url (no padding, no stray bits); BadInputError otherwise."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise BadInputError(f"{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadInputError(f"{what} is not base64url") from None
    if b64e(raw) != text:
        raise BadInputError(f"{what} is not canonical base64url")
    return raw


# -- keys -----------------------------------------------------------------------------------------


def new_file_key(random_bytes: RandomBytes = os.urandom) -> bytes:
    """A fresh 32-byte content key for one grant."""
    key = random_bytes(FILE_KEY_BYTES)
    if len(key) != FILE_KEY_BYTES:
        raise ValueError("random source returned the wrong length")
    return key


def seal_file_key(
    file_key: bytes, recipient_x25519: bytes, random_bytes: RandomBytes = os.urandom
) -> dict[str, str]:
    """A stanza holding ``file_key`` sealed to an X25519 public key (libsodium sealed box)."""
    # Built from crypto_box so the ephemeral key comes from ``random_bytes``; the result is
    # byte-for-byte what crypto_box_seal makes and crypto_box_seal_open accepts:
    # nonce = BLAKE2b-192(epk || rpk), body = epk || crypto_box(m, nonce, rpk, esk).
    ephemeral_secret = random_bytes(32)
    ephemeral_public = bindings.crypto_scalarmult_base(ephemeral_secret)
    nonce = hashlib.blake2b(ephemeral_public + recipient_x25519, digest_size=24).digest()
    boxed = bindings.crypto_box(file_key, nonce, recipient_x25519, ephemeral_secret)
    return {"type": STANZA_TYPE, "body": b64e(ephemeral_public + boxed)}


def unseal_file_key(
    stanzas: Sequence[Mapping[str, str]], x25519_public: bytes, x25519_private: bytes
) -> bytes:
    """The file key from the first stanza that opens with this key pair."""
    for stanza in stanzas:
        if stanza.get("type") != STANZA_TYPE:
            continue
        body = b64d(stanza.get("body"), "stanza body")
        try:
            key = bindings.crypto_box_seal_open(body, x25519_public, x25519_private)
        except Exception:  # noqa: S112 - a stanza for someone else; try the next one
            continue
        if len(key) == FILE_KEY_BYTES:
            return bytes(key)
    raise VerificationError("the grant's content key is not sealed to this wallet's key")


def _kdf(file_key: bytes, context: bytes, index: int, record_id: str) -> bytes:
    message = struct.pack(">I", index) + record_id.encode("utf-8")
    return hashlib.blake2b(message, key=file_key, person=context, digest_size=32).digest()


def record_ad(index: int, record_id: str) -> bytes:
    """Associated data binding a record's position and id to its ciphertext."""
    return _AD_PREFIX + struct.pack(">I", index) + record_id.encode("utf-8")


@dataclass(frozen=True)
class RecordKeys:
    """The two subkeys of one record: content stream and sealed metadata."""

    data: bytes = field(repr=False)
    meta: bytes = field(repr=False)
    ad: bytes


def record_keys(file_key: bytes, index: int, record_id: str) -> RecordKeys:
    """Subkeys and associated data for record ``index`` with id ``record_id``."""
    return RecordKeys(
        data=_kdf(file_key, _DATA_KEY_CONTEXT, index, record_id),
        meta=_kdf(file_key, _META_KEY_CONTEXT, index, record_id),
        ad=record_ad(index, record_id),
    )


# -- record metadata (sealed) ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordMeta:
    """What only the recipient sees about a record: name, media type, salt and size."""

    name: str
    media_type: str
    salt: bytes = field(repr=False)
    size: int

    def seal(self, keys: RecordKeys, random_bytes: RandomBytes = os.urandom) -> str:
        """The metadata sealed under the record's metadata key, as base64url."""
        plain = canonical_json(
            {
                "media_type": self.media_type,
                "name": self.name,
                "salt": self.salt.hex(),
                "size": self.size,
            }
        )
        return b64e(stream.seal_bytes(keys.meta, plain, keys.ad, random_bytes))

    @classmethod
    def open(cls, sealed: str, keys: RecordKeys, record_id: str) -> RecordMeta:
        """Open sealed metadata; VerificationError if it was changed or moved."""
        try:
            plain = stream.open_bytes(keys.meta, b64d(sealed, "record metadata"), keys.ad)
        except VerificationError:
            raise VerificationError(f"record {record_id}: metadata failed authentication") from None
        try:
            value = jsonutil.loads(plain.decode("utf-8"))
            meta = cls(
                name=value["name"],
                media_type=value["media_type"],
                salt=bytes.fromhex(value["salt"]),
                size=value["size"],
            )
        except (ValueError, KeyError, TypeError, UnicodeError, AttributeError):
            raise VerificationError(f"record {record_id}: metadata is malformed") from None
        if (
            not isinstance(meta.name, str)
            or not isinstance(meta.media_type, str)
            or len(meta.salt) != SALT_BYTES
            or type(meta.size) is not int
            or meta.size < 0
        ):
            raise VerificationError(f"record {record_id}: metadata is malformed")
        return meta


# -- the envelope header --------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeRecord:
    """One record's entry in the envelope header."""

    id: str
    length: int
    meta: str


@dataclass(frozen=True)
class EnvelopeHeader:
    """The envelope header (docs/format-grant.md, "Envelope header")."""

    stanzas: tuple[dict[str, str], ...]
    records: tuple[EnvelopeRecord, ...]
    chunk: int = stream.CHUNK_SIZE
    anchors: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON value."""
        value: dict[str, Any] = {
            "chunk": self.chunk,
            "records": [{"id": r.id, "length": r.length, "meta": r.meta} for r in self.records],
            "stanzas": [dict(s) for s in self.stanzas],
        }
        if self.anchors:
            value["anchors"] = [dict(a) for a in self.anchors]
        return value

    def to_bytes(self) -> bytes:
        """The header's canonical JSON bytes (the first input of the envelope digest)."""
        return canonical_json(self.to_json())

    @property
    def payload_length(self) -> int:
        """Bytes of record ciphertext that follow the file header."""
        return sum(r.length for r in self.records)

    @classmethod
    def from_json(cls, value: object) -> EnvelopeHeader:
        """Validate a parsed envelope header; BadInputError if it is malformed."""
        if not isinstance(value, dict):
            raise BadInputError("envelope header is not an object")
        _only_keys(value, {"chunk", "records", "stanzas"}, {"anchors"}, "envelope header")
        chunk = value["chunk"]
        if chunk != stream.CHUNK_SIZE or type(chunk) is not int:
            raise BadInputError("envelope uses an unsupported chunk size")
        stanzas = value["stanzas"]
        if not isinstance(stanzas, list) or not 1 <= len(stanzas) <= 16:
            raise BadInputError("envelope must have 1 to 16 stanzas")
        for stanza in stanzas:
            if not isinstance(stanza, dict):
                raise BadInputError("envelope stanza is not an object")
            _only_keys(stanza, {"type", "body"}, set(), "envelope stanza")
            if not isinstance(stanza["type"], str) or not 0 < len(stanza["type"]) <= 64:
                raise BadInputError("envelope stanza type is malformed")
            if stanza["type"] == STANZA_TYPE:
                if len(b64d(stanza["body"], "stanza body")) != _SEALEDBOX_BYTES:
                    raise BadInputError("envelope stanza body has the wrong length")
            else:
                b64d(stanza["body"], "stanza body")
        records = value["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
            raise BadInputError(f"envelope must list 1 to {MAX_RECORDS} records")
        parsed: list[EnvelopeRecord] = []
        for entry in records:
            if not isinstance(entry, dict):
                raise BadInputError("envelope record is not an object")
            _only_keys(entry, {"id", "length", "meta"}, set(), "envelope record")
            record_id, length, meta = entry["id"], entry["length"], entry["meta"]
            if not isinstance(record_id, str) or not _ID_RE.match(record_id):
                raise BadInputError("envelope record id is malformed")
            if type(length) is not int or not is_ciphertext_length(length):
                raise BadInputError(f"record {record_id}: impossible ciphertext length")
            if len(b64d(meta, "record metadata")) > MAX_META_BYTES:
                raise BadInputError(f"record {record_id}: metadata is too large")
            parsed.append(EnvelopeRecord(record_id, length, meta))
        if len({r.id for r in parsed}) != len(parsed):
            raise BadInputError("envelope lists a record twice")
        anchors = value.get("anchors", [])
        if (
            not isinstance(anchors, list)
            or len(anchors) > MAX_ANCHORS
            or ("anchors" in value and not anchors)
        ):
            raise BadInputError("envelope anchors are malformed")
        for anchor in anchors:
            if not isinstance(anchor, dict):
                raise BadInputError("envelope anchor is not an object")
            _only_keys(anchor, {"record", "proof"}, set(), "envelope anchor")
            if anchor["record"] not in {r.id for r in parsed} or not isinstance(
                anchor["proof"], dict
            ):
                raise BadInputError("envelope anchor is malformed")
        return cls(
            stanzas=tuple(stanzas),
            records=tuple(parsed),
            chunk=chunk,
            anchors=tuple(anchors),
        )


def _only_keys(value: Mapping[str, Any], required: set[str], optional: set[str], what: str) -> None:
    keys = set(value)
    if not required <= keys or not keys <= required | optional:
        raise BadInputError(f"{what} has missing or unknown fields")


def is_ciphertext_length(length: int) -> bool:
    """True when some plaintext size encrypts to exactly ``length`` bytes."""
    body = length - stream.HEADER_BYTES
    if body < stream.ABYTES or length > MAX_RECORD_BYTES:
        return False
    chunks = -(-body // (stream.CHUNK_SIZE + stream.ABYTES))
    plain = body - chunks * stream.ABYTES
    return plain >= 0 and stream.ciphertext_size(plain) == length


def plaintext_length(length: int) -> int:
    """Plaintext bytes inside a record ciphertext of ``length`` bytes."""
    body = length - stream.HEADER_BYTES
    chunks = -(-body // (stream.CHUNK_SIZE + stream.ABYTES))
    return body - chunks * stream.ABYTES


# -- record streams -------------------------------------------------------------------------------


def encrypt_record(
    keys: RecordKeys,
    src: BinaryIO,
    dst: BinaryIO,
    on_plaintext: Callable[[bytes], None] | None = None,
) -> int:
    """Encrypt one record's plaintext into ``dst``; returns the plaintext length."""
    return stream.encrypt_stream(keys.data, src, dst, keys.ad, on_plaintext)


def decrypt_record(keys: RecordKeys, src: BinaryIO) -> Iterator[bytes]:
    """Plaintext chunks of one record; VerificationError if it is not intact."""
    return stream.decrypt_chunks(keys.data, src, keys.ad)


def is_commitment(text: object) -> bool:
    """True for a lowercase hex SHA-256 commitment."""
    return isinstance(text, str) and bool(_HEX64_RE.match(text))


def is_record_id(text: object) -> bool:
    """True for a record id the envelope accepts (1-200 printable ASCII, no spaces)."""
    return isinstance(text, str) and bool(_ID_RE.match(text))


class PayloadReader:
    """Reads exactly ``length`` bytes of a container's payload, feeding each to a digest.

    ``what`` names the file in errors ("grant file"); ``truncated`` is the message when the
    payload ends early. Shared by the grant and share readers.
    """

    def __init__(self, src: BinaryIO, length: int, digest: Any, what: str, truncated: str) -> None:
        self._src = src
        self.remaining = length
        self._digest = digest
        self._what = what
        self._truncated = truncated

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` payload bytes; BadInputError if the file ends before the payload."""
        if size < 0 or size > self.remaining:
            size = self.remaining
        if size == 0:
            return b""
        try:
            part = self._src.read(size)
        except OSError as exc:
            raise BadInputError(f"cannot read the {self._what} ({exc.strerror})") from None
        if not part:
            raise BadInputError(self._truncated)
        self.remaining -= len(part)
        self._digest.update(part)
        return part


def expect_end(src: BinaryIO, what: str, trailing: str) -> None:
    """BadInputError(``trailing``) if ``src`` holds any byte after the payload."""
    try:
        extra = src.read(1)
    except OSError as exc:
        raise BadInputError(f"cannot read the {what} ({exc.strerror})") from None
    if extra:
        raise BadInputError(trailing)


def read_framed_header(
    src: BinaryIO, what: str, max_header: int
) -> tuple[dict[str, Any] | str, EnvelopeHeader, bytes, int]:
    """After the magic line: the length-prefixed canonical header of a grant or share file.

    Returns (credential, envelope header, the envelope's canonical bytes, header length);
    ``what`` ("grant", "share") names the file in BadInputError messages.
    """
    try:
        prefix = stream.read_full(src, 4)
        if len(prefix) != 4:
            raise BadInputError(f"{what} file is truncated (no header length)")
        (length,) = struct.unpack(">I", prefix)
        if not 2 <= length <= max_header:
            raise BadInputError(f"{what} header length is out of range")
        raw = stream.read_full(src, length)
    except OSError as exc:
        raise BadInputError(f"cannot read the {what} file ({exc.strerror})") from None
    if len(raw) != length:
        raise BadInputError(f"{what} file is truncated (in the header)")
    header = parse_canonical_json(raw, f"{what} header")
    if not isinstance(header, dict) or set(header) != {"credential", "envelope"}:
        raise BadInputError(f"{what} header must hold exactly a credential and an envelope")
    credential = header["credential"]
    if not isinstance(credential, dict | str) or not credential:
        raise BadInputError(f"{what} header credential is neither a JSON-LD credential nor a JWT")
    envelope = EnvelopeHeader.from_json(header["envelope"])
    # Canonical form was checked above, so these are the envelope's bytes as in the file.
    return credential, envelope, canonical_json(header["envelope"]), length


def check_payload_size(
    src: BinaryIO, offset: int, expected: int, truncated: str, trailing: str
) -> None:
    """On a seekable file, refuse a truncated or padded payload before reading it."""
    try:
        if not src.seekable():
            return
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
    except (OSError, ValueError, AttributeError):
        return
    if end - offset < expected:
        raise BadInputError(truncated)
    if end - offset > expected:
        raise BadInputError(trailing)
