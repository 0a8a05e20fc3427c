"""First unlock after an upgrade: seal the metadata a v1 wallet home kept in plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import audit, issued

if TYPE_CHECKING:
    from .wallet import Wallet


def seal_legacy_metadata(wallet: Wallet) -> list[str]:
    """Seal a v1 audit log and grant register in place; the names of the files sealed.

    Cheap when there is nothing to do: one line of the log and one schema query are read."""
    log_path = wallet.home / audit.LOG_FILE
    register_path = wallet.home / issued.REGISTER_FILE
    plain_log = audit.needs_sealing(log_path)
    plain_register = issued.needs_sealing(register_path)
    if not (plain_log or plain_register):
        return []
    from .rotation import retired_identities

    retired = retired_identities(wallet)
    sealed: list[str] = []
    if plain_log and audit.AuditLog(wallet.home, wallet.identity, retired=retired).seal_legacy():
        sealed.append(audit.LOG_FILE)
    if (
        plain_register
        and issued.IssuedGrants(wallet.home, wallet.identity, retired=retired).seal_legacy()
    ):
        sealed.append(issued.REGISTER_FILE)
    return sealed
