"""W3C Status List 2021: revocation bitstrings, their credentials, fetching and checking.

Spec: W3C CCG "Verifiable Credentials Status List v2021" (Final Community Group Report,
2023-01-02), cited below as SL2021. A list is a bitstring of at least 16 KiB (131 072
entries, for group privacy, SL2021 §6.1/§7.2); index 0 is the left-most (most significant) bit
of the first byte; it travels GZIP-compressed and base64url-encoded in ``encodedList``
(SL2021 §3.2, §5.1 generation / §5.2 expansion algorithms).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import os
import re
import stat
import urllib.parse
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from . import jsonutil, keys
from .contexts import STATUS_LIST_CONTEXT
from .credentials import Format, issue_credential, verify_proof
from .errors import BadInputError, NotFoundError, UsageError, VerificationError
from .termsafe import escape
from .urls import parse_url

if TYPE_CHECKING:  # http.client and ssl load only when a URL is fetched
    from .httpfetch import Fetcher

MIN_SIZE: Final = 16 * 1024 * 8  # SL2021 §6.1: at least 16 KiB of bits
MAX_BITSTRING_BYTES: Final = 16 * 1024 * 1024  # expansion cap: a gzip bomb stops here
MAX_DOCUMENT_BYTES: Final = 2 * 1024 * 1024  # a fetched or read status list credential
PURPOSES: Final = ("revocation", "suspension")  # SL2021 §3.1 statusPurpose
ENTRY_TYPE: Final = "StatusList2021Entry"
CREDENTIAL_TYPE: Final = "StatusList2021Credential"
SUBJECT_TYPE: Final = "StatusList2021"
_GZIP_MAGIC_B64: Final = "H4sI"  # base64 of the gzip header 1f 8b 08
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986 §3.1; one letter is a drive
_ACCEPT: Final = "application/vc+ld+json, application/json;q=0.9, application/jwt;q=0.8"

__all__ = [
    "MIN_SIZE",
    "StatusList",
    "check_status",
    "load_credential_document",
    "load_status_list_credential",
    "status_entry",
    "status_list_credential",
]


class StatusList:
    """A status bitstring: one bit per credential, set = revoked (or suspended)."""

    __slots__ = ("_bits",)

    def __init__(self, size: int = MIN_SIZE) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE or size % 8:
            raise UsageError(f"a status list has a multiple of 8 entries, at least {MIN_SIZE}")
        self._bits = bytearray(size // 8)

    @property
    def size(self) -> int:
        """How many entries the list has."""
        return len(self._bits) * 8

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusList) and self._bits == other._bits

    def __hash__(self) -> int:
        return hash(bytes(self._bits))

    def __repr__(self) -> str:
        return f"StatusList(size={self.size}, set={self.count()})"

    def _locate(self, index: int) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.size:
            raise UsageError(f"status list index out of range (0 to {self.size - 1})")
        return index >> 3, 0x80 >> (index & 7)  # SL2021 §5.2: index 0 is the left-most bit

    def set(self, index: int, revoked: bool = True) -> None:
        """Set (revoked) or clear the bit at ``index``."""
        byte, mask = self._locate(index)
        if revoked:
            self._bits[byte] |= mask
        else:
            self._bits[byte] &= ~mask & 0xFF

    def is_set(self, index: int) -> bool:
        """True when the bit at ``index`` is set."""
        byte, mask = self._locate(index)
        return bool(self._bits[byte] & mask)

    def count(self) -> int:
        """How many bits are set."""
        return sum(bin(byte).count("1") for byte in self._bits if byte)

    def encode(self) -> str:
        """The ``encodedList`` value: GZIP, then base64url without padding (SL2021 §5.1)."""
        # mtime=0 keeps the output a function of the bits alone.
        return keys.b64url(gzip.compress(bytes(self._bits), compresslevel=9, mtime=0))

    @classmethod
    def decode(cls, encoded: str) -> StatusList:
        """Expand an ``encodedList`` (SL2021 §5.2); BadInputError when it is not one."""
        if not isinstance(encoded, str) or not encoded:
            raise BadInputError("status list is not an encoded bitstring")
        text = encoded.strip()
        # Bitstring Status List v1.0 adds a multibase "u" prefix; a gzip member always starts
        # "H4sI" in base64, so the prefix is unambiguous.
        if text.startswith("u" + _GZIP_MAGIC_B64):
            text = text[1:]
        # Be liberal in what we accept: base64url or base64, padded or not.
        text = text.rstrip("=").replace("+", "-").replace("/", "_")
        try:
            padded = text + "=" * (-len(text) % 4)
            compressed = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise BadInputError("status list is not base64url") from None
        bits = _gunzip_capped(compressed)
        if len(bits) * 8 < MIN_SIZE:
            raise BadInputError(f"status list is shorter than {MIN_SIZE} entries (16 KiB)")
        status_list = cls.__new__(cls)
        status_list._bits = bytearray(bits)
        return status_list


def _gunzip_capped(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip container only
    try:
        bits = inflater.decompress(compressed, MAX_BITSTRING_BYTES + 1)
    except zlib.error:
        raise BadInputError("status list is not GZIP data") from None
    if len(bits) > MAX_BITSTRING_BYTES:
        raise BadInputError("status list expands to more than 16 MiB")
    if not inflater.eof or inflater.unused_data:
        raise BadInputError("status list GZIP data is truncated or has trailing data")
    return bits


# -- entries and list credentials ----------------------------------------------------------------


def _check_list_url(list_url: str) -> None:
    # The URL is an IRI in the signed graph (@id): a relative one would silently drop out.
    parse_url(list_url, "a status list URL", ("https", "http", "file"))


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise UsageError(f"status purpose must be one of {', '.join(PURPOSES)}")


def status_entry(list_url: str, index: int, purpose: str = "revocation") -> dict[str, Any]:
    """The ``credentialStatus`` (StatusList2021Entry, SL2021 §3.1) for slot ``index``."""
    _check_list_url(list_url)
    _check_purpose(purpose)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise UsageError("a status list index is a non-negative integer")
    return {
        "id": f"{list_url}#{index}",
        "type": ENTRY_TYPE,
        "statusPurpose": purpose,
        "statusListIndex": str(index),  # SL2021 §3.1: a string
        "statusListCredential": list_url,
    }


@overload
def status_list_credential(
    list_url: str,
    status_list: StatusList,
    identity: keys.Identity,
    now: datetime,
    purpose: str = "revocation",
    fmt: Literal["ldp"] = "ldp",
) -> dict[str, Any]: ...
@overload
def status_list_credential(
    list_url: str,
    status_list: StatusList,
    identity: keys.Identity,
    now: datetime,
    purpose: str = "revocation",
    *,
    fmt: Literal["jwt"],
) -> str: ...
@overload
def status_list_credential(
    list_url: str,
    status_list: StatusList,
    identity: keys.Identity,
    now: datetime,
    purpose: str = "revocation",
    fmt: Format = "ldp",
) -> dict[str, Any] | str: ...
def status_list_credential(
    list_url: str,
    status_list: StatusList,
    identity: keys.Identity,
    now: datetime,
    purpose: str = "revocation",
    fmt: Format = "ldp",
) -> dict[str, Any] | str:
    """The signed StatusList2021Credential (SL2021 §3.2) for ``status_list``; id == list_url."""
    _check_list_url(list_url)
    _check_purpose(purpose)
    credential = {
        "@context": list(STATUS_LIST_CONTEXT),
        "id": list_url,
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": identity.did,
        "issuanceDate": _iso(now),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": SUBJECT_TYPE,
            "statusPurpose": purpose,
            "encodedList": status_list.encode(),
        },
    }
    return issue_credential(credential, identity, fmt, now)


def _iso(moment: datetime) -> str:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise UsageError("a time without a time zone was given", "pass an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- loading -------------------------------------------------------------------------------------


def load_status_list_credential(
    source: str,
    transport: Fetcher | None = None,
    timeout: float | None = None,
    *,
    from_user: bool = False,
) -> dict[str, Any] | str:
    """A status list credential (see :func:`load_credential_document`)."""
    return load_credential_document(source, "status list", transport, timeout, from_user=from_user)


def load_credential_document(
    source: str,
    what: str,
    transport: Fetcher | None = None,
    timeout: float | None = None,
    *,
    from_user: bool = False,
) -> dict[str, Any] | str:
    """Read a credential (``what``: "status list", "trust list", …) from an https URL through
    the guarded fetcher (``transport``; strict by default, ``timeout`` its total deadline), or,
    only when the user typed ``source`` (``from_user``), from a file path or file:// URI.

    A URL named by a credential is never read as a local file: that would let its writer make
    the verifier read a FIFO or /dev/stdin, or learn which files exist on its machine.
    """
    if not isinstance(source, str) or not source:
        raise UsageError(f"no {what} source given")
    head, colon, _ = source.partition(":")
    scheme = head.lower() if colon and len(head) > 1 and _SCHEME.fullmatch(head) else ""
    if scheme == "file" or (not scheme and not from_user):
        if not from_user:
            # The same answer whether or not such a file exists here: nothing is touched.
            raise NotFoundError(
                f"the {what} is on its issuer's machine only ({escape(source[:300])})",
                "ask the issuer for the published list (`status publish`) and pass it with "
                "--status-list",
            )
        parse_url(source, f"the {what}", ("file",))
        return _parse_document(_read_file(_file_uri_path(source), source, what), source, what)
    if scheme in ("http", "https"):
        from .httpfetch import Fetcher

        fetcher = transport or Fetcher()
        if timeout is not None:
            fetcher = dataclasses.replace(fetcher, deadline=timeout)
        return _parse_document(_fetch(source, fetcher, what), source, what)
    if scheme:
        raise UsageError(f"{what} source scheme {escape(scheme[:20])!r} is not supported")
    return _parse_document(_read_file(Path(source), source, what), source, what)


def _file_uri_path(uri: str) -> Path:
    from urllib.request import url2pathname  # loads http.client: only for file: lists

    parts = urllib.parse.urlsplit(uri)
    return Path(url2pathname(urllib.parse.unquote(parts.path)))


def _read_file(path: Path, source: str, what: str) -> bytes:
    """At most MAX_DOCUMENT_BYTES of a regular file; a FIFO or device is opened without
    blocking and refused unread."""
    shown = escape(source)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise NotFoundError(f"no {what} at {shown}", "check the path") from None
    except IsADirectoryError:
        raise BadInputError(f"{shown} is a directory, not a {what}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a path"
        raise BadInputError(f"cannot read {what} {shown} ({reason})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise BadInputError(f"{shown} is a directory, not a {what}")
        raise BadInputError(f"{what} {shown} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise BadInputError(f"cannot read {what} {shown} ({exc.strerror})") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise BadInputError(f"{what} {shown} is larger than 2 MiB")
    return raw


def _fetch(url: str, fetcher: Fetcher, what: str) -> bytes:
    from .httpfetch import fetch_document

    return fetch_document(url, what, fetcher=fetcher, max_bytes=MAX_DOCUMENT_BYTES, accept=_ACCEPT)


def _parse_document(raw: bytes, source: str, what: str) -> dict[str, Any] | str:
    shown = escape(source)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadInputError(f"{what} {shown} is not UTF-8 text") from None
    if text.count(".") == 2 and all(part and _is_b64url(part) for part in text.split(".")):
        return text  # a compact JWS (VC-JWT)
    try:
        document = jsonutil.loads(text)
    except ValueError:
        raise BadInputError(f"{what} {shown} is neither JSON nor a JWT") from None
    if isinstance(document, str) and document.count(".") == 2:
        return document  # a JWT stored as a JSON string
    if not isinstance(document, dict):
        raise BadInputError(f"{what} {shown} is not a credential")
    return document


def _is_b64url(text: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


# -- checking ------------------------------------------------------------------------------------


def _entry_index(entry: Mapping[str, Any]) -> int:
    value = entry.get("statusListIndex")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise BadInputError("credentialStatus.statusListIndex is not a decimal index")
    if len(value) > 12:
        raise BadInputError("credentialStatus.statusListIndex is out of range")
    return int(value)


def check_status(
    entry: Mapping[str, Any], status_vc: Mapping[str, Any] | str, expected_issuer: str
) -> bool:
    """True when ``entry``'s bit is set in ``status_vc``; VerificationError if the list is not
    a valid list of ``expected_issuer`` for this entry (SL2021 §5.3 validate algorithm)."""
    if not isinstance(entry, Mapping) or entry.get("type") != ENTRY_TYPE:
        raise BadInputError(f"credentialStatus is not a {ENTRY_TYPE}")
    index = _entry_index(entry)
    purpose = entry.get("statusPurpose")
    list_url = entry.get("statusListCredential")
    if not isinstance(list_url, str) or not list_url:
        raise BadInputError("credentialStatus.statusListCredential is missing")

    result = verify_proof(status_vc)
    if not result.ok:
        raise VerificationError(
            "status list credential's proof does not verify (" + "; ".join(result.errors) + ")"
        )
    credential = result.credential
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if issuer_id != expected_issuer:
        raise VerificationError("status list was issued by someone else")
    types = credential.get("type")
    if not isinstance(types, list) or CREDENTIAL_TYPE not in types:
        raise VerificationError(f"status list credential is not a {CREDENTIAL_TYPE}")
    if credential.get("id") != list_url:
        raise VerificationError("status list credential is not the list the entry names")
    subject = credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != SUBJECT_TYPE:
        raise VerificationError(f"status list subject is not a {SUBJECT_TYPE}")
    if subject.get("statusPurpose") != purpose:  # SL2021 §5.3 step 6
        raise VerificationError("status list purpose does not match the entry's")
    encoded = subject.get("encodedList")
    try:
        bits = StatusList.decode(encoded if isinstance(encoded, str) else "")
    except BadInputError as exc:
        raise VerificationError(exc.message) from None
    if index >= bits.size:
        raise VerificationError("status list index is beyond the end of the list")
    return bits.is_set(index)
