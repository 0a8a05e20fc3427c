"""The ledger interface: publish a Merkle root, look a receipt up again.

A backend is any class (or factory) that takes a :class:`LedgerContext` and gives an
object with ``name``, ``publish(root) -> Receipt`` and ``lookup(receipt) -> LookupResult``.
Backends register under the ``healthwallet.ledgers`` entry-point group; see
docs/anchoring.md for the contract (publish must be idempotent per root).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from ..errors import BadInputError, StorageError, UsageError
from ..keys import Identity

ENTRY_POINT_GROUP = "healthwallet.ledgers"
RECEIPT_VERSION = 1
DEFAULT_LEDGER = "local"

_HEX32 = re.compile(r"[0-9a-f]{64}")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC text with a Z suffix and whole seconds, e.g. 2025-01-31T12:00:00Z."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse the text :func:`format_time` writes; ValueError otherwise."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=UTC)


def parse_hash_hex(text: object, what: str) -> bytes:
    """32 bytes from 64 lowercase hex characters; BadInputError naming ``what`` otherwise."""
    if not isinstance(text, str) or not _HEX32.fullmatch(text):
        raise BadInputError(f"{what} is not 64 lowercase hex characters")
    return bytes.fromhex(text)


def open_private_db(path: Path) -> sqlite3.Connection:
    """Open a SQLite file readable by the owner only, in WAL mode, autocommit."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file ourselves so it is 0600 from the start; SQLite gives the
        # -wal and -shm files the same mode as the database file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open {path.name} ({type(exc).__name__})") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed intent must survive a power cut before we act on it.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"cannot open {path.name} ({type(exc).__name__})") from exc
    return conn


@dataclass(frozen=True)
class Receipt:
    """What a ledger hands back for a published root; JSON form is versioned."""

    ledger: str
    root: bytes
    details: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON-able dict (format: docs/anchoring.md, receipt v1)."""
        return {
            "version": RECEIPT_VERSION,
            "ledger": self.ledger,
            "root": self.root.hex(),
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, value: object) -> Receipt:
        """Read a receipt dict; BadInputError if it is not a v1 receipt."""
        if not isinstance(value, Mapping):
            raise BadInputError("a receipt is a JSON object")
        if value.get("version") != RECEIPT_VERSION:
            raise BadInputError("unsupported receipt version")
        ledger = value.get("ledger")
        details = value.get("details")
        if not isinstance(ledger, str) or not ledger:
            raise BadInputError("receipt has no ledger name")
        if not isinstance(details, Mapping):
            raise BadInputError("receipt details are not an object")
        return cls(ledger, parse_hash_hex(value.get("root"), "receipt root"), dict(details))


@dataclass(frozen=True)
class LookupResult:
    """What the ledger says about a receipt.

    ``root`` is the root the ledger holds for the receipt (None when it holds nothing);
    ``confirmed`` is True only when the ledger vouches for ``root`` at ``anchored_at``
    with enough confirmations; ``problem`` says why not when something is wrong
    (a failed transaction, a mismatch), and is None when it is merely not deep enough yet.
    """

    root: bytes | None
    anchored_at: datetime | None
    confirmations: int
    confirmed: bool
    problem: str | None = None


@runtime_checkable
class Ledger(Protocol):
    """A place to publish Merkle roots. ``publish`` must be idempotent per root."""

    name: str

    def publish(self, root: bytes) -> Receipt:
        """Publish ``root`` once; publishing a root again returns the first receipt."""
        ...

    def lookup(self, receipt: Receipt) -> LookupResult:
        """What the ledger holds for ``receipt``; LedgerUnavailableError if unreachable."""
        ...


@dataclass(frozen=True)
class LedgerContext:
    """Everything a backend may use: the wallet home, keys, clock, transport, settings."""

    home: Path
    identity: Identity | None = None
    clock: Callable[[], datetime] = utc_now
    transport: httpx.BaseTransport | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def now(self) -> datetime:
        """The context clock's time, as aware UTC."""
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must return timezone-aware times")
        return moment.astimezone(UTC)


LedgerFactory = Callable[[LedgerContext], Ledger]


def available_ledgers() -> list[str]:
    """Names of the installed ledger backends, sorted."""
    return sorted({point.name for point in entry_points(group=ENTRY_POINT_GROUP)})


def load_ledger(name: str, ctx: LedgerContext) -> Ledger:
    """The backend registered as ``name``, built for ``ctx``; UsageError if there is none."""
    points = [point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name == name]
    if not points:
        known = ", ".join(available_ledgers()) or "none"
        raise UsageError(f"no ledger backend named {name!r}", f"installed ledgers: {known}")
    try:
        factory = points[0].load()
    except Exception as exc:
        raise UsageError(
            f"ledger backend {name!r} could not be loaded ({type(exc).__name__})",
            "reinstall the package that provides it",
        ) from exc
    ledger = factory(ctx)
    if not isinstance(ledger, Ledger):
        raise UsageError(
            f"ledger backend {name!r} does not implement publish and lookup",
            "see docs/anchoring.md for the backend interface",
        )
    return ledger
