"""Shared pieces for the grant tests: identities, records, a pinned clock, a registry."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from healthwallet.grants import GrantRecord
from healthwallet.issued import IssuedGrants
from healthwallet.keys import Identity

PATIENT = Identity(hashlib.sha256(b"patient").digest())
DOCTOR = Identity(hashlib.sha256(b"doctor").digest())
STRANGER = Identity(hashlib.sha256(b"stranger").digest())
ISSUED = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=7)
LATER = ISSUED + timedelta(hours=1)


def make_record(
    record_id: str, content: bytes, name: str, media_type: str = "text/plain"
) -> GrantRecord:
    """A record the way the vault hands it to a grant."""
    salt = hashlib.sha256(b"salt" + record_id.encode()).digest()

    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(content)

    return GrantRecord(
        id=record_id,
        media_type=media_type,
        name=name,
        salt=salt,
        commitment=hashlib.sha256(salt + content).hexdigest(),
        size=len(content),
        open=opener,
    )


RECORDS = [
    make_record(
        "0a1b2c3d4e5f6071", b'{"resourceType":"Bundle"}', "labs.json", "application/fhir+json"
    ),
    make_record("1a1b2c3d4e5f6071", os.urandom(70_000), "scan.pdf", "application/pdf"),
    make_record("2a1b2c3d4e5f6071", b"", "empty.txt"),
]


@dataclass
class Issued:
    """One issued grant: its bytes, its summary and the patient's registry."""

    data: bytes
    grant_id: str
    registry: IssuedGrants


def issue(
    registry: IssuedGrants,
    fmt: str = "ldp",
    records: list[GrantRecord] | None = None,
    recipient: str | None = None,
    anchors: dict[str, dict[str, object]] | None = None,
) -> Issued:
    """Issue a grant for DOCTOR through the registry."""
    out = io.BytesIO()
    summary = registry.issue(
        out,
        records if records is not None else RECORDS,
        recipient or DOCTOR.did,
        purpose="second opinion on knee MRI",
        expires=EXPIRES,
        fmt=fmt,  # type: ignore[arg-type]
        anchors=anchors,
    )
    return Issued(out.getvalue(), summary["grant_id"], registry)
