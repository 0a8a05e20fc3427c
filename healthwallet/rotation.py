"""Key rotation, retired identities, and moving the seed between keystores.

Rotation replaces the identity seed (and so the DID and the vault key) while keeping every
record and keeping old grants verifiable: did:key is self-certifying, so a grant signed by the
old DID verifies without the wallet; the old seed is kept, sealed under the new one, so the old
DID's status lists can still be signed and old grants still revoked.

Crash safety (docs/format-backup.md, "Key rotation"): every step is ordered so that a process
killed at any moment leaves a wallet that opens with one of the two keys and loses no record.

1. ``rotation.json`` (public: old DID, new DID, the signed link statement) marks the rotation.
2. The new seed is saved in a *pending* keystore entry and read back.
3. ``retired-keys.next`` (all retired seeds, sealed under a subkey of the new seed) is written.
4. The vault re-wraps every record key under the new vault key and records the new owner DID,
   in ONE SQLite transaction. This is the commit point.
5. Roll forward: ``retired-keys.next`` → ``retired-keys``; ``wallet.json`` gets the new DID and
   the statement; the pending entry becomes the main one; the marker is removed.

Opening a wallet that has a marker reconciles it under the wallet lock: when the vault's keys
belong to the new DID the rotation is finished (step 5, idempotent), otherwise it is undone
(pending entry, ``retired-keys.next`` and marker removed; nothing else had changed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import jsonutil, keys
from .errors import KeystoreError, NotFoundError, UsageError, VerificationError
from .fsutil import LOCK_FILE, exclusive_lock, fsync_dir
from .keys import Identity
from .keystore import KeyringLike, Keystore, KeystoreKind, PassphraseSource, ask_once
from .safewrite import atomic_write_bytes
from .stream import RandomBytes, open_bytes, seal_bytes
from .timeutil import Clock, utc_now
from .vault import Vault
from .wallet import (
    ROTATION_FILE,
    Wallet,
    WalletInfo,
    read_info,
    write_info,
)

RETIRED_FILE = "retired-keys"
RETIRED_NEXT = RETIRED_FILE + ".next"
MARKER_FORMAT = "healthwallet-rotation/v1"
RETIRED_FORMAT = "healthwallet-retired-keys/v1"
STATEMENT_TYPE = "HealthWalletKeyRotation"
_STATEMENT_PREFIX = b"healthwallet-key-rotation/v1\n"
_RETIRED_CONTEXT = b"hw-retired-v1"
_STATEMENT_FIELDS = ("type", "old_did", "new_did", "rotated")
# Temp files of atomic writes to our own files, left behind by a killed process.
_OWN_TEMP_PREFIXES = tuple(
    f".tmp-{name}-"
    for name in ("identity.key", "identity.key.pending", RETIRED_NEXT, ROTATION_FILE, "wallet.json")
)

Checkpoint = Callable[[str], None]
"""Called after each step of a rotation with the step's name (tests kill the process there)."""


@dataclass(frozen=True)
class RotationResult:
    """What `key rotate` did."""

    old_did: str
    new_did: str
    records: int
    statement: dict[str, Any]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(clock: Clock) -> str:
    return clock().isoformat(timespec="seconds")


# -- the link statement ---------------------------------------------------------------------------


def link_statement(old: Identity, new: Identity, clock: Clock = utc_now) -> dict[str, Any]:
    """A statement that ``old``'s DID is replaced by ``new``'s, signed by both keys."""
    body = {"type": STATEMENT_TYPE, "old_did": old.did, "new_did": new.did, "rotated": _iso(clock)}
    message = _STATEMENT_PREFIX + _canonical(body)
    return dict(
        body,
        old_signature=keys.b64url(old.sign(message)),
        new_signature=keys.b64url(new.sign(message)),
    )


def verify_statement(statement: Any) -> bool:
    """True when a link statement is well formed and carries both valid signatures."""
    try:
        body = {name: statement[name] for name in _STATEMENT_FIELDS}
        if body["type"] != STATEMENT_TYPE or not all(isinstance(v, str) for v in body.values()):
            return False
        message = _STATEMENT_PREFIX + _canonical(body)
        old_key = keys.ed25519_from_did(body["old_did"])
        new_key = keys.ed25519_from_did(body["new_did"])
        old_sig = keys.b64url_decode(statement["old_signature"])
        new_sig = keys.b64url_decode(statement["new_signature"])
    except (KeyError, TypeError, ValueError, UsageError):
        return False
    return keys.verify_signature(old_key, message, old_sig) and keys.verify_signature(
        new_key, message, new_sig
    )


def identity_history(info: WalletInfo) -> list[dict[str, Any]]:
    """The wallet's rotations, oldest first, each with ``verified`` (signatures and chain)."""
    out = []
    statements = list(info.history)
    for position, statement in enumerate(statements):
        following = statements[position + 1]["old_did"] if position + 1 < len(statements) else None
        expected_next = following if following is not None else info.did
        chained = isinstance(statement, dict) and statement.get("new_did") == expected_next
        entry = {name: statement.get(name) for name in _STATEMENT_FIELDS}
        entry["verified"] = bool(chained and verify_statement(statement))
        out.append(entry)
    return out


# -- retired keys ---------------------------------------------------------------------------------


def _retired_key(identity: Identity) -> bytes:
    # BLAKE2b keyed with the seed and a fixed personalization, like the vault key (keys.py).
    return hashlib.blake2b(
        b"", key=identity.seed, person=_RETIRED_CONTEXT.ljust(16, b"\0"), digest_size=32
    ).digest()


def _seal_retired(
    owner: Identity, entries: list[dict[str, str]], random_bytes: RandomBytes
) -> bytes:
    header = {"format": RETIRED_FORMAT, "owner": owner.did}
    sealed = seal_bytes(_retired_key(owner), _canonical(entries), _canonical(header), random_bytes)
    return (json.dumps(dict(header, sealed=sealed.hex()), indent=2) + "\n").encode()


def read_retired(path: Path, owner: Identity) -> list[dict[str, str]]:
    """Entries ``{"did", "seed" (hex), "retired"}`` of a retired-keys file; [] when missing."""
    try:
        body = jsonutil.loads(path.read_bytes())
        header = {"format": body["format"], "owner": body["owner"]}
        sealed = bytes.fromhex(body["sealed"])
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        raise VerificationError(
            "the retired keys file is damaged", "restore the wallet from a backup"
        ) from None
    if header["format"] != RETIRED_FORMAT:
        raise VerificationError(
            "the retired keys file has an unknown format", "upgrade healthwallet"
        )
    if header["owner"] != owner.did:
        raise VerificationError(
            "the retired keys file belongs to another identity", "restore the wallet from a backup"
        )
    try:
        entries = jsonutil.loads(open_bytes(_retired_key(owner), sealed, _canonical(header)))
        for entry in entries:
            if Identity(bytes.fromhex(entry["seed"])).did != entry["did"]:
                raise ValueError("seed and DID disagree")
    except (VerificationError, ValueError, KeyError, TypeError):
        raise VerificationError(
            "the retired keys file failed authentication", "restore the wallet from a backup"
        ) from None
    return [dict(entry) for entry in entries]


def retired_identities(wallet: Wallet) -> list[Identity]:
    """The identities this wallet had before its key rotations, oldest first."""
    entries = read_retired(wallet.home / RETIRED_FILE, wallet.identity)
    return [Identity(bytes.fromhex(entry["seed"])) for entry in entries]


def identity_for_did(wallet: Wallet, did: str) -> Identity:
    """The current or a retired identity of this wallet with this DID; NotFoundError if none."""
    if did == wallet.identity.did:
        return wallet.identity
    for identity in retired_identities(wallet):
        if identity.did == did:
            return identity
    raise NotFoundError(
        "that DID is not one of this wallet's identities", "see `healthwallet id --history`"
    )


# -- rotation -------------------------------------------------------------------------------------


def rotation_in_progress(home: Path) -> bool:
    """True when a rotation was started and not yet finished or undone."""
    return (home / ROTATION_FILE).exists()


def _read_marker(home: Path) -> dict[str, Any]:
    try:
        marker = jsonutil.loads((home / ROTATION_FILE).read_bytes())
        if marker["format"] != MARKER_FORMAT:
            raise ValueError("unknown format")
        str(marker["old_did"]), str(marker["new_did"]), dict(marker["statement"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KeystoreError(
            "the record of an interrupted key rotation is damaged",
            "restore the wallet from a backup",
        ) from None
    return dict(marker)


def _clean_own_temp_files(home: Path) -> None:
    for entry in os.scandir(home):
        if entry.name.startswith(_OWN_TEMP_PREFIXES) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def _roll_back(home: Path, store: Keystore) -> None:
    """Undo a rotation that did not reach its commit point (only its own files go)."""
    store.pending_entry().delete()
    (home / RETIRED_NEXT).unlink(missing_ok=True)
    (home / ROTATION_FILE).unlink(missing_ok=True)
    fsync_dir(home)


def _promote(store: Keystore, seed: bytes) -> None:
    """Make the pending entry (holding ``seed``) the main entry of ``store``."""
    pending = store.pending_entry()
    if store.kind == "file":
        # The pending file was read back (or, when reconciling, just opened) before this.
        if pending.file_path.exists():
            os.replace(pending.file_path, store.file_path)
            fsync_dir(store.home)
        return
    store.store(seed)  # reads back, or raises
    pending.delete()


def _finish(
    home: Path,
    info: WalletInfo,
    new: Identity,
    statement: dict[str, Any],
    store: Keystore,
    step: Checkpoint,
) -> WalletInfo:
    """Roll a committed rotation forward; every part may already be done (idempotent)."""
    if (home / RETIRED_NEXT).exists():
        os.replace(home / RETIRED_NEXT, home / RETIRED_FILE)
        fsync_dir(home)
    step("retired-renamed")
    if info.did != new.did:
        info = replace(info, did=new.did, history=[*info.history, statement])
        write_info(home, info)
    step("wallet-json")
    _promote(store, new.seed)
    step("keystore")
    (home / ROTATION_FILE).unlink(missing_ok=True)
    fsync_dir(home)
    _clean_own_temp_files(home)
    return info


def _reconcile_locked(
    home: Path, passphrase: PassphraseSource, keyring_backend: KeyringLike | None
) -> WalletInfo:
    info = read_info(home)
    if not rotation_in_progress(home):
        return info
    marker = _read_marker(home)
    store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
    vault = Vault(home, bytes(32))
    try:
        owner = vault.key_owner()
    finally:
        vault.close()
    if owner != marker["new_did"]:
        _roll_back(home, store)
        _clean_own_temp_files(home)
        return info
    new_seed: bytes | None = None
    try:
        candidate = store.pending_entry().load(passphrase)
        if Identity(candidate).did == marker["new_did"]:
            new_seed = candidate
    except KeystoreError:
        pass
    if new_seed is None:
        candidate = store.load(passphrase)
        if Identity(candidate).did != marker["new_did"]:
            raise KeystoreError(
                "cannot finish an interrupted key rotation: the new key is missing",
                "restore the wallet from a backup, or from the new recovery phrase",
            )
        new_seed = candidate
    return _finish(home, info, Identity(new_seed), marker["statement"], store, lambda _: None)


def reconcile(
    home: Path, passphrase: PassphraseSource, keyring_backend: KeyringLike | None = None
) -> WalletInfo:
    """Finish or undo an interrupted rotation (under the wallet lock); returns the wallet info."""
    with exclusive_lock(home / LOCK_FILE):
        return _reconcile_locked(home, passphrase, keyring_backend)


def rotate_identity(
    home: Path,
    passphrase: PassphraseSource,
    keyring_backend: KeyringLike | None = None,
    *,
    random_bytes: RandomBytes = os.urandom,
    now: Clock = utc_now,
    checkpoint: Checkpoint | None = None,
) -> RotationResult:
    """Replace the identity seed; re-wrap every record key; keep the old seed as retired."""
    step = checkpoint or (lambda _: None)
    secret = ask_once(passphrase)
    read_info(home)  # NotFoundError before anything else when there is no wallet
    with exclusive_lock(home / LOCK_FILE):
        info = _reconcile_locked(home, secret, keyring_backend)
        store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
        old = Identity(store.load(secret))
        if old.did != info.did:
            raise KeystoreError(
                "the key in the keystore does not belong to this wallet",
                "check that --home points at the right wallet",
            )
        vault = Vault(home, old.vault_key, now=now, random_bytes=random_bytes)
        try:
            if vault.key_owner() not in (None, old.did):
                raise KeystoreError(
                    "the record index says its keys belong to another identity",
                    "run `healthwallet doctor`; restore the wallet from a backup",
                )
            retired = read_retired(home / RETIRED_FILE, old)
            retired.append({"did": old.did, "seed": old.seed.hex(), "retired": _iso(now)})
            new = Identity(random_bytes(keys.SEED_BYTES))
            statement = link_statement(old, new, now)
            marker = {
                "format": MARKER_FORMAT,
                "old_did": old.did,
                "new_did": new.did,
                "statement": statement,
            }
            _clean_own_temp_files(home)
            atomic_write_bytes(home / ROTATION_FILE, _canonical(marker) + b"\n", "the wallet")
            step("marker")
            try:
                pending = store.pending_entry()
                pending.store(new.seed, secret, random_bytes)
                if pending.load(secret) != new.seed:
                    raise KeystoreError("the keystore did not keep the new key")
                step("pending")
                atomic_write_bytes(
                    home / RETIRED_NEXT, _seal_retired(new, retired, random_bytes), "the wallet"
                )
                step("retired")
                count = vault.rewrap(
                    new.vault_key,
                    new.did,
                    take_lock=False,
                    on_batch=lambda _: step("rewrap-batch"),
                )
            except BaseException:
                if vault.key_owner() != new.did:
                    _roll_back(home, store)
                raise
            step("rewrap")
            _finish(home, info, new, statement, store, step)
        finally:
            vault.close()
    return RotationResult(old.did, new.did, count, statement)


# -- keystore migration ---------------------------------------------------------------------------


def migrate_keystore(
    home: Path,
    to: KeystoreKind,
    passphrase: PassphraseSource,
    keyring_backend: KeyringLike | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> WalletInfo:
    """Move the seed to another keystore; the old copy goes only after the new one reads back."""
    if to not in ("keyring", "file"):
        raise UsageError(f"unknown keystore {to!r}", "use --to keyring or --to file")
    secret = ask_once(passphrase)
    read_info(home)
    with exclusive_lock(home / LOCK_FILE):
        info = _reconcile_locked(home, secret, keyring_backend)
        if info.keystore == to:
            raise UsageError(
                f"the identity key is already in the {to} keystore", "nothing was changed"
            )
        old = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
        seed = old.load(secret)
        if Identity(seed).did != info.did:
            raise KeystoreError(
                "the key in the keystore does not belong to this wallet",
                "check that --home points at the right wallet",
            )
        new = Keystore(to, home, info.wallet_id, keyring_backend)
        new.store(seed, secret, random_bytes)
        if new.load(secret) != seed:
            raise KeystoreError("the new keystore did not keep the key; nothing was removed")
        info = replace(info, keystore=to)
        write_info(home, info)
        old.delete()
        fsync_dir(home)
    return info
