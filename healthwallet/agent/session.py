"""What `unlock`, `lock` and every command ask of the agent, for one wallet home."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import KeystoreError, UsageError
from ..keystore import KeyringLike, Keystore, PassphraseSource, derive_file_key, file_key_id
from ..wallet import ROTATION_FILE, read_info
from .client import AgentClient
from .location import socket_path


def agent_for(home: Path, environ: Mapping[str, str]) -> AgentClient | None:
    """The client for the agent of ``home`` (it may not be running); None when turned off."""
    path = socket_path(home, environ)
    return None if path is None else AgentClient(path)


def _file_keystore(home: Path) -> Keystore:
    info = read_info(home)
    if info.keystore != "file":
        raise UsageError(
            "this wallet keeps its key in the OS keyring, which unlocks without a passphrase",
            "the agent is for file keystores; nothing to unlock",
        )
    return Keystore(info.keystore, home, info.wallet_id)


def _read_keystore_file(store: Keystore) -> bytes:
    try:
        return store.file_path.read_bytes()
    except OSError:
        raise KeystoreError(
            "the keystore file is missing or unreadable", "restore it from a backup"
        ) from None


def wallet_key_id(home: Path) -> str:
    """The id under which the agent holds this wallet's key (public; changes with the file)."""
    return file_key_id(_read_keystore_file(_file_keystore(home)))


def derive_unlock_key(
    home: Path, passphrase: PassphraseSource, keyring_backend: KeyringLike | None = None
) -> tuple[str, bytes]:
    """(key id, derived key) for the wallet's keystore file: Argon2id once, checked by opening.

    An interrupted key rotation is settled first, as every unlock does (rotation.py).
    """
    store = _file_keystore(home)
    if (home / ROTATION_FILE).exists():
        from ..keystore import ask_once
        from ..rotation import reconcile

        passphrase = ask_once(passphrase)
        reconcile(home, passphrase, keyring_backend)
        store = _file_keystore(home)
    return derive_file_key(_read_keystore_file(store), passphrase(False))
