"""First unlock after an upgrade: seal the metadata a v1 wallet home kept in plain text.

The checks here run on every unlock, so they import nothing heavy: one line of the audit log
and one schema query of the grant register are read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from . import jsonutil

if TYPE_CHECKING:
    from .wallet import Wallet

LOG_FILE = "audit.log"
REGISTER_FILE = "grants.sqlite"


def is_v1_audit_line(line: bytes) -> bool:
    """True for a v1 (plain) audit entry; a damaged line is left for the chain check to name."""
    try:
        entry = jsonutil.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and "event" in entry and "v" not in entry


def plain_audit_log(path: Path) -> bool:
    """True when the log at ``path`` is a v1 (plain) log."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(1 << 20)
    except OSError:
        return False
    return bool(first) and is_v1_audit_line(first)


def is_v1_register(db: sqlite3.Connection) -> bool:
    """True when this register still has v1's plain ``recipient`` column."""
    return "recipient" in {r[1] for r in db.execute("PRAGMA table_info(grants)")}


def plain_register(path: Path) -> bool:
    """True when the register at ``path`` still holds v1 rows (recipients in the clear)."""
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return is_v1_register(db)
        finally:
            db.close()
    except sqlite3.Error:
        return False


def seal_legacy_metadata(wallet: Wallet) -> list[str]:
    """Seal a v1 audit log and grant register in place; the names of the files sealed."""
    plain_log = plain_audit_log(wallet.home / LOG_FILE)
    plain_rows = plain_register(wallet.home / REGISTER_FILE)
    if not (plain_log or plain_rows):
        return []
    from .audit import AuditLog
    from .issued import IssuedGrants
    from .rotation import retired_identities

    retired = retired_identities(wallet)
    sealed: list[str] = []
    if plain_log and AuditLog(wallet.home, wallet.identity, retired=retired).seal_legacy():
        sealed.append(LOG_FILE)
    if plain_rows and IssuedGrants(wallet.home, wallet.identity, retired=retired).seal_legacy():
        sealed.append(REGISTER_FILE)
    return sealed
