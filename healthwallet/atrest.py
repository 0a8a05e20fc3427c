"""Which wallet-home files are still v1 (plain metadata), checked cheaply on every unlock.

The checks import nothing heavy: one line of the audit log and one schema query of the grant
register are read. Sealing them is unlock.seal_legacy_metadata.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import jsonutil

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
