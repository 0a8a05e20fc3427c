"""The wallet home: where it is, creating it, unlocking it, and its settings."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from . import jsonutil
from .errors import KeystoreError, NotFoundError, UsageError
from .fsutil import atomic_write_bytes, ensure_private_dir, exclusive_lock
from .keys import Identity
from .keystore import (
    KeyringLike,
    Keystore,
    KeystoreKind,
    PassphraseSource,
    ask_once,
    system_keyring,
)
from .stream import RandomBytes

WALLET_FILE = "wallet.json"
ROTATION_FILE = "rotation.json"  # present only while a key rotation is unfinished (rotation.py)
CONFIG_FILE = "config.json"
WALLET_FORMAT = "healthwallet-wallet/v1"
HOME_ENV = "HEALTHWALLET_HOME"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


# Settings a user may change with `healthwallet config set`, with their defaults.
CONFIG_DEFAULTS: dict[str, str] = {
    "status-url": "",
    "did-web": "",
    "max-expiry-days": "365",
    "clock-skew-seconds": "60",
    "ledger": "local",
    "ethereum.rpc-url": "",
    "ethereum.chain-id": "",
    "ethereum.confirmations": "1",
    "ethereum.key-file": "",
}


def default_home() -> Path:
    """The platform's user data directory for healthwallet."""
    from platformdirs import user_data_path

    return user_data_path("healthwallet", appauthor=False)


def resolve_home(flag: str | Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """The wallet home: ``--home`` if given, else $HEALTHWALLET_HOME, else the platform default."""
    env = os.environ if environ is None else environ
    if flag:
        return Path(flag).expanduser()
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    return default_home()


@dataclass(frozen=True)
class WalletInfo:
    """The public facts of a wallet, kept in plaintext in wallet.json (no secrets)."""

    did: str
    keystore: KeystoreKind
    wallet_id: str
    created: str
    format: str = WALLET_FORMAT
    history: list[dict[str, Any]] = field(default_factory=list)


_WALLET_HINT = "restore the wallet from a backup"


class _DamagedWallet(UsageError):
    """wallet.json is there but is not what healthwallet writes."""

    default_hint = _WALLET_HINT


def wallet_exists(home: Path) -> bool:
    """True when ``home`` holds a wallet."""
    return (home / WALLET_FILE).exists()


def read_info(home: Path) -> WalletInfo:
    """Read wallet.json; NotFoundError when there is no wallet here, UsageError if damaged."""
    path = home / WALLET_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            "no wallet here", "create one with `healthwallet init`, or point --home at yours"
        ) from None
    except OSError:
        raise UsageError("the wallet file is damaged", _WALLET_HINT) from None
    raw = jsonutil.load_object(
        data, "the wallet file", max_bytes=jsonutil.SMALL_FILE_BYTES, error=_DamagedWallet
    )
    if raw.get("format") != WALLET_FORMAT:
        raise UsageError("the wallet has an unknown format", "upgrade healthwallet")
    keystore = jsonutil.text(raw, "keystore", "the wallet file", _DamagedWallet)
    if keystore not in ("keyring", "file"):
        raise _DamagedWallet("the wallet file names an unknown keystore")
    history = jsonutil.items_of(
        raw.get("history", []), dict, "the wallet file history", _DamagedWallet
    )
    return WalletInfo(
        did=jsonutil.text(raw, "did", "the wallet file", _DamagedWallet),
        keystore=cast(KeystoreKind, keystore),
        wallet_id=jsonutil.text(raw, "wallet_id", "the wallet file", _DamagedWallet),
        created=jsonutil.text(raw, "created", "the wallet file", _DamagedWallet),
        history=history,
    )


def write_info(home: Path, info: WalletInfo) -> None:
    """Write wallet.json atomically."""
    atomic_write_bytes(
        home / WALLET_FILE, (json.dumps(asdict(info), indent=2) + "\n").encode(), "the wallet file"
    )


def choose_keystore(
    requested: KeystoreKind | None, keyring_backend: KeyringLike | None
) -> KeystoreKind:
    """The keystore to use: the one asked for, else the OS keyring when present, else a file."""
    if requested is not None:
        return requested
    return "keyring" if (keyring_backend or system_keyring()) is not None else "file"


@dataclass
class Wallet:
    """An unlocked wallet: its home, public info and identity."""

    home: Path
    info: WalletInfo
    identity: Identity

    @property
    def did(self) -> str:
        """The wallet's DID."""
        return self.identity.did


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
    ensure_private_dir(home)
    kind = choose_keystore(keystore, keyring_backend)
    identity = Identity(seed if seed is not None else random_bytes(32))
    from .credentials import did_of

    info = WalletInfo(
        did=did_of(identity),  # didkit's key_to_did, cross-checked against our encoding
        keystore=kind,
        wallet_id=str(uuid.UUID(bytes=random_bytes(16), version=4)),
        created=now().isoformat(timespec="seconds"),
    )
    store = Keystore(kind, home, info.wallet_id, keyring_backend)
    store.store(identity.seed, passphrase, random_bytes)
    from .vault import Vault

    Vault(home, identity.vault_key).initialize(identity.did)
    # wallet.json is written last: a wallet exists only once everything else is in place.
    write_info(home, info)
    return Wallet(home, info, identity)


def open_wallet(
    home: Path, passphrase: PassphraseSource, keyring_backend: KeyringLike | None = None
) -> Wallet:
    """Unlock the wallet in ``home``; KeystoreError if its key cannot be read.

    A key rotation that a crash interrupted is finished or undone first (rotation.py).
    """
    passphrase = ask_once(passphrase)
    if (home / ROTATION_FILE).exists():
        from .rotation import reconcile

        reconcile(home, passphrase, keyring_backend)
    info = read_info(home)
    store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
    identity = Identity(store.load(passphrase))
    if identity.did != info.did:
        # A rotation or migration may have finished between the two reads; they hold the
        # wallet lock throughout, so look again under it before calling this a mismatch.
        from .vault import LOCK_FILE

        with exclusive_lock(home / LOCK_FILE):
            info = read_info(home)
            store = Keystore(info.keystore, home, info.wallet_id, keyring_backend)
            identity = Identity(store.load(passphrase))
    if identity.did != info.did:
        raise KeystoreError(
            "the key in the keystore does not belong to this wallet",
            "check that --home points at the right wallet",
        )
    return Wallet(home, info, identity)


def read_config(home: Path) -> dict[str, str]:
    """All settings, defaults filled in; UsageError when config.json is not what we write."""
    config = dict(CONFIG_DEFAULTS)
    for key, value in _stored_config(home).items():
        if not isinstance(value, str):
            raise _DamagedConfig(f"the config file: {key} is not a string")
        try:
            check_setting(key, value)
        except UsageError as exc:
            raise _DamagedConfig(f"the config file: {exc.message}") from None
        config[key] = value
    return config


def _stored_config(home: Path) -> dict[str, Any]:
    try:
        data = (home / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError:
        raise _DamagedConfig("the config file cannot be read") from None
    return jsonutil.load_object(
        data, "the config file", max_bytes=jsonutil.SMALL_FILE_BYTES, error=_DamagedConfig
    )


class _DamagedConfig(UsageError):
    """config.json is not what `config set` writes."""

    default_hint = "fix it with `healthwallet config set`, or remove config.json"


_POSITIVE_INT_SETTINGS = ("max-expiry-days", "ethereum.confirmations")  # never empty
# Whole-number settings and their ranges: wide enough for any real use, small enough that
# every date and duration computed from them stays representable.
_INT_SETTINGS: dict[str, tuple[int, int]] = {
    "max-expiry-days": (1, 36_500),
    "ethereum.confirmations": (1, 10_000),
    "clock-skew-seconds": (0, 86_400),
    "ethereum.chain-id": (0, 2**63 - 1),
}
_MAX_INT_DIGITS = 19


def _is_plugin_setting(key: str) -> bool:
    """`NAME.setting` keys belong to a ledger backend, including third-party ones."""
    name, dot, setting = key.partition(".")
    return bool(dot) and name.isidentifier() and bool(setting) and "." not in setting


def check_setting(key: str, value: str) -> None:
    """UsageError unless ``key`` is a known (or ledger plugin) setting and ``value`` fits it."""
    if key in _INT_SETTINGS and (value or key in _POSITIVE_INT_SETTINGS):
        low, high = _INT_SETTINGS[key]
        if not (_is_whole(value) and low <= int(value) <= high):
            example = CONFIG_DEFAULTS[key] or "31337 for a local Anvil node"
            raise UsageError(f"{key} takes a whole number from {low} to {high}", f"e.g. {example}")
    if key == "did-web" and value:
        from .didweb import document_url

        document_url(value)  # UsageError (exit 2) unless a well-formed did:web
    if key not in CONFIG_DEFAULTS and not _is_plugin_setting(key):
        raise UsageError(
            f"unknown setting {key!r}", "known settings: " + ", ".join(sorted(CONFIG_DEFAULTS))
        )


def _is_whole(value: str) -> bool:
    # ASCII digits only (str.isdigit also takes "²" and other digits int() refuses), and short.
    return 0 < len(value) <= _MAX_INT_DIGITS and value.isascii() and value.isdigit()


def int_setting(config: dict[str, str], key: str, default: int) -> int:
    """A whole-number setting of a config that ``read_config`` checked (``default`` if empty)."""
    value = config.get(key, "")
    return int(value) if _is_whole(value) else default


def set_config(home: Path, key: str, value: str) -> dict[str, str]:
    """Change one setting; UsageError for an unknown key or a value that does not fit it."""
    check_setting(key, value)
    ensure_private_dir(home)
    stored = _stored_config(home)
    stored[key] = value
    atomic_write_bytes(home / CONFIG_FILE, (json.dumps(stored, indent=2) + "\n").encode(), "config")
    return read_config(home)
