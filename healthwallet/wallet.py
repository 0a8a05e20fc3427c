"""The wallet home: where it is, creating it, unlocking it, and its settings."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import jsonutil
from .errors import HealthWalletError, NotFoundError, UsageError
from .fsutil import ensure_private_dir, refuse_links_in_home
from .safewrite import JOURNAL_DIR, OutputDir, atomic_write_bytes, sweep_journal
from .settings import check_setting

if TYPE_CHECKING:  # keys and keystore load libsodium: only the commands that unlock need them
    from .keys import Identity
    from .keystore import KeyringLike, KeystoreKind

WALLET_FILE = "wallet.json"
ROTATION_FILE = "rotation.json"  # present only while a key rotation is unfinished (rotation.py)
CONFIG_FILE = "config.json"
WALLET_FORMAT = "healthwallet-wallet/v1"
HOME_ENV = "HEALTHWALLET_HOME"

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
    "allow-local-urls": "false",
    # "": on once some issuer is trusted for ClinicianCredential (healthwallet.trust.vouch)
    "require-clinician-credential": "",
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


def home_source(flag: str | Path | None = None, environ: dict[str, str] | None = None) -> str:
    """Where ``resolve_home`` took the home from: "--home", "$HEALTHWALLET_HOME" or "default"."""
    env = os.environ if environ is None else environ
    if flag:
        return "--home"
    return f"${HOME_ENV}" if env.get(HOME_ENV) else "default"


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
    refuse_links_in_home(home)
    # Every command that opens the wallet removes temp files a killed writer left in the home.
    with contextlib.suppress(HealthWalletError):  # a read-only or missing home: nothing to do
        OutputDir(home, what="the wallet home").close()
    sweep_journal(home / JOURNAL_DIR)  # and what killed sessions left where they wrote
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"no wallet in {home}",
            "create one with `healthwallet init`, or point --home (or $HEALTHWALLET_HOME) at yours",
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
        keystore=cast("KeystoreKind", keystore),
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
    from .keystore import system_keyring

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


def read_config(home: Path) -> dict[str, str]:
    """All settings, defaults filled in; UsageError when config.json is not what we write."""
    config = dict(CONFIG_DEFAULTS)
    for key, value in _stored_config(home).items():
        if not isinstance(value, str):
            raise _DamagedConfig(f"the config file: {key} is not a string")
        if key not in CONFIG_DEFAULTS and not _is_plugin_setting(key):
            raise _DamagedConfig("the config file holds an unknown setting")
        try:
            check_setting(key, value, stored=True)
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


def _is_plugin_setting(key: str) -> bool:
    """`NAME.setting` keys belong to a ledger backend, including third-party ones."""
    name, dot, setting = key.partition(".")
    return bool(dot) and name.isidentifier() and bool(setting) and "." not in setting


def set_config(home: Path, key: str, value: str) -> dict[str, str]:
    """Change one setting; UsageError for an unknown key or a value that does not fit it."""
    if key not in CONFIG_DEFAULTS and not _is_plugin_setting(key):
        raise UsageError(
            f"unknown setting {key!r}", "known settings: " + ", ".join(sorted(CONFIG_DEFAULTS))
        )
    check_setting(key, value)
    ensure_private_dir(home, symlinks="owned")
    stored = _stored_config(home)
    stored[key] = value
    atomic_write_bytes(home / CONFIG_FILE, (json.dumps(stored, indent=2) + "\n").encode(), "config")
    return read_config(home)
