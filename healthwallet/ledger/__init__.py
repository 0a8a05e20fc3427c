"""Ledgers that anchor Merkle roots, and the pure Merkle tree math (RFC 9162 §2.1).

``merkle`` has no I/O. ``base`` defines the backend interface and loads backends
from the ``healthwallet.ledgers`` entry-point group; ``local`` and ``ethereum`` are
the two built-in backends (imported on demand through ``load_ledger``).
"""

from __future__ import annotations

from .base import (
    DEFAULT_LEDGER,
    ENTRY_POINT_GROUP,
    Ledger,
    LedgerContext,
    LookupResult,
    Receipt,
    available_ledgers,
    load_ledger,
)

__all__ = [
    "DEFAULT_LEDGER",
    "ENTRY_POINT_GROUP",
    "Ledger",
    "LedgerContext",
    "LookupResult",
    "Receipt",
    "available_ledgers",
    "load_ledger",
]
