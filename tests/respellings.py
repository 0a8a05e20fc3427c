"""Respellings of a signed credential: same meaning to didkit, other bytes (issue 9).

Also the helpers that forge well-framed containers for the tests of hostile input.

Each takes a signed credential (a dict, edited in place). A verifier must refuse every one of
them while the original verifies: the bytes that verify are the bytes that were signed.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from healthwallet import keys
from healthwallet.envelope import canonical_json
from healthwallet.errors import EXIT_USAGE, EXIT_VERIFY

Credential = dict[str, Any]


def _date(member: str, suffix: str) -> Callable[[Credential], None]:
    def respell(credential: Credential) -> None:
        assert credential[member].endswith("Z")
        credential[member] = credential[member][:-1] + suffix

    return respell


def _created(suffix: str) -> Callable[[Credential], None]:
    def respell(credential: Credential) -> None:
        _date("created", suffix)(credential["proof"])

    return respell


def _purpose_variant(credential: Credential, change: Callable[[str], str]) -> None:
    subject = credential["credentialSubject"]
    subject["purpose"] = change(subject["purpose"])


def _unicode_variant(text: str) -> str:
    """The same text under Unicode normalisation (NFD if it differs, else an NFKC twin)."""
    decomposed = unicodedata.normalize("NFD", text)
    return decomposed if decomposed != text else text.replace("o", "\uff4f", 1)


def _context_flag_as_number(credential: Credential) -> None:
    inline = credential["@context"][-1]
    inline["@protected"] = 1


COMMON: dict[str, Callable[[Credential], None]] = {
    "type-reordered": lambda c: c.update(type=c["type"][::-1]),
    "type-repeated": lambda c: c.update(type=[*c["type"], c["type"][0]]),
    "issuanceDate-millis": _date("issuanceDate", ".000Z"),
    "issuanceDate-offset": _date("issuanceDate", "+00:00"),
    "proof-created-millis": _created(".000Z"),
    "proof-created-offset": _created("+00:00"),
    "proof-created-lower-z": _created("z"),
    "context-reordered": lambda c: c.update({"@context": [c["@context"][1], c["@context"][0],
                                                          *c["@context"][2:]]}),
    "issuer-as-object": lambda c: c.update(issuer={"id": c["issuer"]}),
    "subject-as-list": lambda c: c.update(credentialSubject=[c["credentialSubject"]]),
    "null-member": lambda c: c.update(credentialSchema=None),
    "empty-array-member": lambda c: c.update(evidence=[]),
}
"""Respellings every credential healthwallet issues must refuse."""

ISSUED_CREDENTIAL: dict[str, Callable[[Credential], None]] = {
    **COMMON,
    "expirationDate-millis": _date("expirationDate", ".000Z"),
    "expirationDate-offset": _date("expirationDate", "+00:00"),
    "context-flag-as-number": _context_flag_as_number,
    "status-index-as-number": lambda c: c["credentialStatus"].update(
        statusListIndex=int(c["credentialStatus"]["statusListIndex"])),
    "status-type-as-list": lambda c: c["credentialStatus"].update(
        type=[c["credentialStatus"]["type"]]),
    "purpose-extra-whitespace": lambda c: _purpose_variant(c, lambda p: f" {p}  "),
    "purpose-unicode-variant": lambda c: _purpose_variant(c, _unicode_variant),
}
"""Respellings of a grant's or a consent's credential (both have a purpose and a status)."""

STATUS_LIST: dict[str, Callable[[Credential], None]] = {
    **COMMON,
    "subject-type-as-list": lambda c: c["credentialSubject"].update(
        type=[c["credentialSubject"]["type"]]),
    "encodedList-whitespace": lambda c: c["credentialSubject"].update(
        encodedList=c["credentialSubject"]["encodedList"] + "\n"),
}
"""Respellings of a StatusList2021Credential."""


def reframe(data: bytes, magic_len: int, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """A container (grant, share, backup) with its length-prefixed JSON header edited."""
    start = magic_len + 4
    (length,) = struct.unpack(">I", data[magic_len:start])
    header = json.loads(data[start : start + length])
    edit(header)
    raw = canonical_json(header)
    return data[:magic_len] + struct.pack(">I", len(raw)) + raw + data[start + length :]


def respell_container(
    data: bytes, magic: bytes, respell: Callable[[Credential], None]
) -> bytes:
    """A grant or share file with its credential respelled, framed as a well-formed file."""
    return reframe(data, len(magic), lambda header: respell(header["credential"]))


def assert_refused(name: str, code: int, message: str) -> None:
    """Exit 1 (the proof check names the member), or 2 if the member has the wrong shape."""
    assert code in (EXIT_VERIFY, EXIT_USAGE), (name, code, message)
    if name.startswith(("type-reo", "issuanceDate-", "expirationDate-", "proof-", "context-")):
        assert code == EXIT_VERIFY and "proof" in message, (name, message)


def grant_file(wallet: Any, folder: Path) -> Path:
    """A one-record grant from ``wallet`` (a conftest Cli) to a doctor's did:key."""
    note = folder / "note.txt"
    note.write_text("x")
    wallet.ok("record", "add", note, "--tag", "n")
    doctor = keys.Identity(bytes(range(1, 33))).did
    grant = folder / "g.hwgrant"
    wallet.ok("grant", doctor, "--tag", "n", "--expires", "1d", "--out", grant)
    return grant
