"""Creating and unlocking a wallet: the keystore, the vault and an unfinished key rotation."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from .credentials import did_of
from .errors import KeystoreError, UsageError
from .fsutil import LOCK_FILE, ensure_private_dir, exclusive_lock
from .keys import Identity
from .keystore import (
    KeyAgent,
    KeyringLike,
    Keystore,
    KeystoreKind,
    PassphraseSource,
    ask_once,
)
from .rotation import reconcile
from .stream import RandomBytes
from .timeutil import Clock, utc_now
from .vault import Vault
from .wallet import (
    ROTATION_FILE,
    Wallet,
    WalletInfo,
    choose_keystore,
    read_info,
    wallet_exists,
    write_info,
)


def init_wallet(
    home: Path,
    keystore: KeystoreKind | None,
    passphrase: PassphraseSource,
    keyring_backend: KeyringLike | None = None,
    seed: bytes | None = None,
    random_bytes: RandomBytes = os.urandom,
    now: Clock = utc_now,
) -> Wallet:
    """Create a new wallet in ``home``; refuses (UsageError) if one is already there."""
    if wallet_exists(home):
        raise UsageError(
            "a wallet already exists here; nothing was changed",
            "use another --home, or keep using the wallet you have",
        )
    ensure_private_dir(home, symlinks="owned")
    kind = choose_keystore(keystore, keyring_backend)
    identity = Identity(seed if seed is not None else random_bytes(32))
    info = WalletInfo(
        did=did_of(identity),  # didkit's key_to_did, cross-checked against our encoding
        keystore=kind,
        wallet_id=str(uuid.UUID(bytes=random_bytes(16), version=4)),
        created=now().isoformat(timespec="seconds"),
    )
    store = Keystore(kind, home, info.wallet_id, keyring_backend)
    store.store(identity.seed, passphrase, random_bytes)
    Vault(home, identity.vault_key).initialize(identity.did)
    # wallet.json is written last: a wallet exists only once everything else is in place.
    write_info(home, info)
    return Wallet(home, info, identity)


def open_wallet(
    home: Path,
    passphrase: PassphraseSource,
    keyring_backend: KeyringLike | None = None,
    agent: KeyAgent | None = None,
) -> Wallet:
    """Unlock the wallet in ``home``; KeystoreError if its key cannot be read.

    A key rotation that a crash interrupted is finished or undone first (rotation.py).
    With ``agent`` (an unlock agent, see agent/), a file keystore is opened with the key it
    holds and the passphrase is asked for only when it holds none that fits.
    """
    passphrase = ask_once(passphrase)
    if (home / ROTATION_FILE).exists():
        reconcile(home, passphrase, keyring_backend)
    info = read_info(home)
    store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
    identity = Identity(store.load(passphrase, agent))
    if identity.did != info.did:
        # A rotation or migration may have finished between the two reads; they hold the
        # wallet lock throughout, so look again under it before calling this a mismatch.
        with exclusive_lock(home / LOCK_FILE):
            info = read_info(home)
            store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
            identity = Identity(store.load(passphrase, agent))
    if identity.did != info.did:
        raise KeystoreError(
            "the key in the keystore does not belong to this wallet",
            "check that --home points at the right wallet",
        )
    wallet = Wallet(home, info, identity)
    seal_legacy_metadata(wallet)  # a home written before metadata was sealed (format v1)
    return wallet


def seal_legacy_metadata(wallet: Wallet) -> list[str]:
    """Seal a v1 audit log and grant register in place; the names of the files sealed."""
    from .atrest import LOG_FILE, REGISTER_FILE, plain_audit_log, plain_register

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
