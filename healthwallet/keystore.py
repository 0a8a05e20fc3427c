"""Where the identity seed lives: the OS keyring, or a passphrase-sealed file.

File keystore format (v1, JSON, see docs/format.md): the seed sealed with
XChaCha20-Poly1305 under a key derived from the passphrase by Argon2id
(libsodium crypto_pwhash, at least the "moderate" limits). The whole header is bound
as associated data, so changing the KDF limits or the salt breaks the seal.

The Argon2id cost may be lowered only under test: both ``HEALTHWALLET_TEST_INSECURE_KDF=1``
and pytest's ``PYTEST_CURRENT_TEST`` must be set, as age does for scrypt in its tests.
A file that asks for less than the moderate cost is refused outside tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from nacl import pwhash

from . import jsonutil, limits
from .errors import BadInputError, KeystoreError, UsageError, VerificationError
from .keys import SEED_BYTES
from .safewrite import atomic_write_bytes
from .stream import RandomBytes, open_bytes, seal_bytes

KeystoreKind = Literal["keyring", "file"]
PassphraseSource = Callable[[bool], str]
"""Returns the passphrase; the argument says whether this is a new one (confirm it)."""


def ask_once(source: PassphraseSource) -> PassphraseSource:
    """A passphrase source that asks at most once and then repeats the answer."""
    answers: list[str] = []

    def get(new: bool) -> str:
        if not answers:
            answers.append(source(new))
        return answers[0]

    return get


KEYRING_SERVICE = "healthwallet"
KEYSTORE_FILE = "identity.key"
PENDING_SUFFIX = ".pending"
FILE_FORMAT = "healthwallet-keystore/v1"

OPSLIMIT = limits.ARGON2ID_OPSLIMIT
MEMLIMIT = limits.ARGON2ID_MEMLIMIT
_TEST_OPSLIMIT = pwhash.argon2id.OPSLIMIT_MIN
_TEST_MEMLIMIT = pwhash.argon2id.MEMLIMIT_MIN
_SALT_BYTES = pwhash.argon2id.SALTBYTES


def insecure_test_kdf() -> bool:
    """True only inside a pytest run that asked for a cheap KDF."""
    return (
        os.environ.get("HEALTHWALLET_TEST_INSECURE_KDF") == "1"
        and "PYTEST_CURRENT_TEST" in os.environ
    )


def kdf_limits() -> tuple[int, int]:
    """Argon2id (opslimit, memlimit) for new keystore files."""
    if insecure_test_kdf():
        return _TEST_OPSLIMIT, _TEST_MEMLIMIT
    return OPSLIMIT, MEMLIMIT


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return bytes(
        pwhash.argon2id.kdf(
            32, passphrase.encode("utf-8"), salt, opslimit=opslimit, memlimit=memlimit
        )
    )


def _header_ad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal_seed_file(seed: bytes, passphrase: str, random_bytes: RandomBytes = os.urandom) -> bytes:
    """The bytes of a file keystore holding ``seed`` under ``passphrase``."""
    if not passphrase:
        raise UsageError("the passphrase is empty", "choose a passphrase of a few words")
    opslimit, memlimit = kdf_limits()
    salt = random_bytes(_SALT_BYTES)
    header = {
        "format": FILE_FORMAT,
        "kdf": "argon2id",
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": salt.hex(),
    }
    key = _derive(passphrase, salt, opslimit, memlimit)
    sealed = seal_bytes(key, seed, _header_ad(header), random_bytes)
    body = dict(header, sealed=sealed.hex())
    return (json.dumps(body, indent=2) + "\n").encode()


@dataclass(frozen=True)
class _SealedSeed:
    """A parsed file keystore: its bound header, salt, sealed seed and (checked) KDF cost."""

    header: dict[str, Any]
    salt: bytes
    sealed: bytes
    opslimit: int
    memlimit: int


def _parse_seed_file(blob: bytes) -> _SealedSeed:
    try:
        body = jsonutil.load_object(blob, "the keystore file", max_bytes=jsonutil.SMALL_FILE_BYTES)
        header = {k: body[k] for k in ("format", "kdf", "opslimit", "memlimit", "salt")}
        salt = bytes.fromhex(header["salt"])
        sealed = bytes.fromhex(body["sealed"])
        raw_cost = header["opslimit"], header["memlimit"]
    except (ValueError, KeyError, TypeError, BadInputError):
        raise KeystoreError(
            "the keystore file is damaged", "restore it from a backup or your recovery phrase"
        ) from None
    if header["format"] != FILE_FORMAT or header["kdf"] != "argon2id" or len(salt) != _SALT_BYTES:
        raise KeystoreError("the keystore file has an unknown format", "upgrade healthwallet")
    try:  # before any work: the file must not choose what unlocking costs
        opslimit, memlimit = limits.argon2id_cost(*raw_cost, allow_weaker=insecure_test_kdf())
    except limits.CostRefused as exc:
        raise KeystoreError(
            f"the keystore file {exc}",
            "the file may have been tampered with; restore it from a backup",
        ) from None
    return _SealedSeed(header, salt, sealed, opslimit, memlimit)


def _open_sealed(parsed: _SealedSeed, key: bytes) -> bytes:
    try:
        seed = open_bytes(key, parsed.sealed, _header_ad(parsed.header))
    except VerificationError:
        raise KeystoreError(
            "wrong passphrase (or the keystore file was changed)",
            "check HEALTHWALLET_PASSPHRASE or the file given to --passphrase-file",
        ) from None
    if len(seed) != SEED_BYTES:
        raise KeystoreError("the keystore file holds a seed of the wrong size")
    return seed


def open_seed_file(blob: bytes, passphrase: str) -> bytes:
    """The seed inside a file keystore; KeystoreError on a wrong passphrase or a bad file."""
    parsed = _parse_seed_file(blob)
    return _open_sealed(parsed, _derive(passphrase, parsed.salt, parsed.opslimit, parsed.memlimit))


def file_key_id(blob: bytes) -> str:
    """A public name for the key that opens this keystore file (it changes with its salt)."""
    parsed = _parse_seed_file(blob)
    digest = hashlib.sha256(b"hw-file-key-id-v1\0" + _header_ad(parsed.header) + parsed.sealed)
    return digest.hexdigest()[:32]


def derive_file_key(blob: bytes, passphrase: str) -> tuple[str, bytes]:
    """(key id, the Argon2id-derived key) of a keystore file, checked by opening the file."""
    parsed = _parse_seed_file(blob)
    key = _derive(passphrase, parsed.salt, parsed.opslimit, parsed.memlimit)
    _open_sealed(parsed, key)
    return file_key_id(blob), key


class KeyAgent(Protocol):
    """Where an already derived keystore-file key may be found (an unlock agent, agent/)."""

    def file_key(self, key_id: str) -> bytes | None:
        """The derived key named ``key_id``, or None when the agent does not hold it."""
        ...


def open_seed_file_via_agent(blob: bytes, agent: KeyAgent) -> bytes | None:
    """The seed, opened with a key the agent holds; None when it holds none that fits."""
    key = agent.file_key(file_key_id(blob))
    if key is None or len(key) != 32:
        return None
    try:
        return _open_sealed(_parse_seed_file(blob), key)
    except KeystoreError:
        return None  # a stale or wrong key: the caller falls back to the passphrase


class KeyringLike(Protocol):
    """The part of the ``keyring`` API we use (so tests can pass a real alternative)."""

    def get_password(self, service: str, username: str) -> str | None: ...
    def set_password(self, service: str, username: str, password: str) -> None: ...
    def delete_password(self, service: str, username: str) -> None: ...


def system_keyring() -> KeyringLike | None:
    """The OS keyring when a real backend is present, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring):
        return None
    try:
        priority = float(backend.priority)
    except Exception:
        return None
    if priority <= 0:
        return None
    return backend


@dataclass
class Keystore:
    """Loads and stores the seed of one wallet (identified by ``wallet_id``)."""

    kind: KeystoreKind
    home: Path
    wallet_id: str
    keyring_backend: KeyringLike | None = None
    # A pending entry holds a new seed while a key rotation is under way (see rotation.py):
    # `identity.key.pending`, or the keyring user `<wallet_id>.pending`.
    pending: bool = False

    @property
    def file_path(self) -> Path:
        """Where the file keystore lives."""
        return self.home / (KEYSTORE_FILE + (PENDING_SUFFIX if self.pending else ""))

    @property
    def username(self) -> str:
        """The keyring user name of this entry."""
        return self.wallet_id + (PENDING_SUFFIX if self.pending else "")

    def pending_entry(self) -> Keystore:
        """The pending entry beside this one (same kind, home and wallet)."""
        return Keystore(self.kind, self.home, self.wallet_id, self.keyring_backend, pending=True)

    def _keyring(self) -> KeyringLike:
        backend = self.keyring_backend or system_keyring()
        if backend is None:
            raise KeystoreError(
                "no OS keyring is available",
                "start your desktop keyring, or use `--keystore file`",
            )
        return backend

    def store(
        self,
        seed: bytes,
        passphrase: PassphraseSource | None = None,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        """Save ``seed``; for a file keystore ``passphrase`` supplies a new passphrase."""
        if self.kind == "keyring":
            try:
                self._keyring().set_password(KEYRING_SERVICE, self.username, seed.hex())
            except KeystoreError:
                raise
            except Exception as exc:
                raise KeystoreError(
                    f"the OS keyring refused to store the key ({type(exc).__name__})",
                    "unlock your keyring, or use `--keystore file`",
                ) from None
            if self.load() != seed:
                raise KeystoreError("the OS keyring did not keep the key")
            return
        if passphrase is None:
            raise KeystoreError("a passphrase is needed for a file keystore")
        atomic_write_bytes(self.file_path, seal_seed_file(seed, passphrase(True), random_bytes))

    def load(
        self, passphrase: PassphraseSource | None = None, agent: KeyAgent | None = None
    ) -> bytes:
        """Read the seed back; KeystoreError if missing, locked, or the passphrase is wrong.

        A file keystore is first opened with a key ``agent`` holds, if any fits; otherwise
        (no agent, it refused, or its key is stale) the passphrase is asked for as usual.
        """
        if self.kind == "keyring":
            try:
                value = self._keyring().get_password(KEYRING_SERVICE, self.username)
            except KeystoreError:
                raise
            except Exception as exc:
                raise KeystoreError(
                    f"the OS keyring is locked or unreachable ({type(exc).__name__})",
                    "unlock your keyring and try again",
                ) from None
            if value is None:
                raise KeystoreError(
                    "the identity key is missing from the OS keyring",
                    "restore it with `healthwallet init --from-phrase`, or from a backup",
                )
            try:
                seed = bytes.fromhex(value)
            except ValueError:
                raise KeystoreError("the keyring entry is damaged") from None
            if len(seed) != SEED_BYTES:
                raise KeystoreError("the keyring entry is damaged")
            return seed
        try:
            blob = self.file_path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(
                "the keystore file is missing",
                f"expected {KEYSTORE_FILE} in the wallet home; restore it from a backup",
            ) from None
        except OSError as exc:
            raise KeystoreError(f"cannot read the keystore file ({exc.strerror})") from None
        if agent is not None and not self.pending:
            from_agent = open_seed_file_via_agent(blob, agent)
            if from_agent is not None:
                return from_agent
        if passphrase is None:
            raise KeystoreError("a passphrase is needed to unlock the keystore file")
        return open_seed_file(blob, passphrase(False))

    def delete(self) -> None:
        """Remove the seed from this keystore (used after a verified migration)."""
        if self.kind == "keyring":
            try:
                self._keyring().delete_password(KEYRING_SERVICE, self.username)
            except KeystoreError:
                raise
            except Exception as exc:
                # Already gone is fine; anything else means the key may still be there.
                if type(exc).__name__ != "PasswordDeleteError":
                    raise KeystoreError(
                        f"the OS keyring refused to delete the key ({type(exc).__name__})"
                    ) from None
            return
        self.file_path.unlink(missing_ok=True)
