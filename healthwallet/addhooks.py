"""What `Vault.add` takes besides a file: prepared content, and a gate that may refuse it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from .fhir import Synopsis


class Opener(Protocol):
    """Opens prepared content for reading, from its start, each time it is called."""

    def __call__(self) -> BinaryIO: ...


@dataclass(frozen=True)
class PreparedContent:
    """Content that is not a file of its own (a piece of a split file), already checked:
    its stored file name, type, media type and synopsis are known before it is encrypted."""

    name: str
    record_type: str
    media_type: str
    found: Synopsis
    opener: Opener

    def open(self, mode: str = "rb") -> BinaryIO:
        """A fresh reader of the content (``mode`` is always binary reading)."""
        assert mode == "rb", "prepared content is only read"
        return self.opener()


class ContentGate(Protocol):
    """Sees a record's plaintext as it is encrypted, then admits or refuses it (raising a
    HealthWalletError) inside the transaction that would commit the record's row."""

    def update(self, chunk: bytes) -> None: ...

    def admit(self, db: sqlite3.Connection, record_id: str) -> None: ...
