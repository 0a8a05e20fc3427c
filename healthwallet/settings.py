"""What each `config set` value must be, checked when it is set rather than when it is used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import UsageError

# Whole-number settings: (smallest, largest) accepted. The upper bounds keep later date and
# block arithmetic in range (a 10^15-day expiry would overflow datetime when a grant is made).
_RANGES: dict[str, tuple[int, int]] = {
    "max-expiry-days": (1, 3650),
    "clock-skew-seconds": (0, 86400),
    "ethereum.confirmations": (1, 1000),
    "ethereum.chain-id": (1, 2**53 - 1),
}
_MAX_VALUE = 2048


def _whole_number(key: str, value: str) -> None:
    low, high = _RANGES[key]
    # ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() may refuse or read.
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        raise UsageError(
            f"{key} takes a whole number from {low} to {high}",
            f"e.g. `healthwallet config set {key} {max(low, 1)}`",
        )


def _url(key: str, value: str) -> None:
    from .urls import parse_url

    # One URL validator for every URL healthwallet reads (urls.py); exit 2, never 70. An RPC
    # URL is not quoted back in the error: it may carry an API key. A status-url may be a
    # file:// folder for a wallet that publishes lists by hand.
    schemes = ("https", "http", "file") if key == "status-url" else ("https", "http")
    parse_url(value, f"the {key} setting", schemes, quote=key == "status-url")


def _boolean(key: str, value: str) -> None:
    if value not in ("true", "false"):
        raise UsageError(f"{key} is true or false", f"e.g. `healthwallet config set {key} true`")


def _did_web(key: str, value: str) -> None:
    from .didweb import document_url

    document_url(value)  # UsageError (exit 2) unless a well-formed did:web


def _ledger(key: str, value: str) -> None:
    from .ledger.base import available_ledgers

    known = available_ledgers()
    if value not in known:
        raise UsageError(f"no ledger backend {value!r}", "installed: " + ", ".join(known))


def _existing_file(key: str, value: str) -> None:
    if not Path(value).expanduser().is_file():
        raise UsageError(f"{key}: no such file", "give the path of an existing file")


_CHECKS: dict[str, Callable[[str, str], None]] = {
    "status-url": _url,
    "ethereum.rpc-url": _url,
    "allow-local-urls": _boolean,
    "require-clinician-credential": _boolean,
    "did-web": _did_web,
    "ledger": _ledger,
    "ethereum.key-file": _existing_file,
    **dict.fromkeys(_RANGES, _whole_number),
}


# Checks that depend on this machine (an installed plugin, an existing file) run when a value
# is set; a stored value that no longer passes them is left for the command that uses it.
_SET_ONLY = frozenset({"ledger", "ethereum.key-file"})


def check_setting(key: str, value: str, *, stored: bool = False) -> None:
    """Raise UsageError unless ``value`` is one ``key`` can use; an empty value resets a
    setting to its default and is always allowed (except where the default is required).
    ``stored``: the value was read from config.json rather than given to `config set`."""
    if len(value) > _MAX_VALUE:
        raise UsageError(f"the value of {key} is too long", f"at most {_MAX_VALUE} characters")
    if value == "" and key not in ("ledger", "max-expiry-days", "ethereum.confirmations"):
        return
    if stored and key in _SET_ONLY:
        return
    check = _CHECKS.get(key)
    if check is not None:
        check(key, value)


def int_setting(config: dict[str, str], key: str, default: int) -> int:
    """A whole-number setting of a config that ``read_config`` checked (``default`` if empty)."""
    value = config.get(key, "")
    return int(value) if value.isascii() and value.isdigit() else default
