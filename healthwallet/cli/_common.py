"""What every command shares: global state, output (human or --json), passphrases.

Start-up discipline (docs/adr/0016-startup-without-pydantic.md): this module and every command
module import at their top only typer, the standard library and light core modules. Anything
heavier (rich, libsodium, didkit, httpx, duckdb, the vault, the keystore …) is imported inside
the function that needs it; tests/cli/test_startup.py holds every command to this.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, cast

import typer

from ..errors import KeystoreError, UsageError
from ..termsafe import escape
from ..wallet import read_config, resolve_home

if TYPE_CHECKING:
    from rich.console import Console

    from ..httpfetch import Answer, Fetcher
    from ..keystore import PassphraseSource
    from ..wallet import Wallet

PASSPHRASE_ENV = "HEALTHWALLET_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")
]


@dataclass
class GlobalState:
    """Options given before (or anywhere around) the command."""

    home_flag: str | None = None
    passphrase_file: Path | None = None
    debug: bool = False
    allow_weak_passphrase: bool = False  # set by --allow-weak-passphrase where a key is sealed
    quiet: bool = False  # --quiet: no confirmations, notes or progress; data and errors only


STATE = GlobalState()


def home() -> Path:
    """The wallet home for this invocation."""
    return resolve_home(STATE.home_flag)


@dataclass(frozen=True)
class _FetcherOnFirstUse:
    """The guarded fetcher, made when a URL is first fetched: a command that fetches nothing
    (verify against a status list file) never loads http.client and ssl."""

    deadline: float | None = None  # None: the fetcher's default (``dataclasses.replace`` sets it)

    @functools.cached_property
    def _real(self) -> Fetcher:
        # Made once: the settings file is read on the first fetch, not on every request.
        from ..httpfetch import LOCAL_URLS_SETTING, Fetcher

        real = Fetcher(allow_local=read_config(home()).get(LOCAL_URLS_SETTING) == "true")
        if self.deadline is not None:
            real = dataclasses.replace(real, deadline=self.deadline)
        return real

    def get(self, url_text: str, what: str, *, max_bytes: int, accept: str) -> bytes:
        """``Fetcher.get`` of a fetcher that allows loopback only with `allow-local-urls`."""
        return self._real.get(url_text, what, max_bytes=max_bytes, accept=accept)

    def exchange(
        self,
        method: str,
        url_text: str,
        what: str,
        *,
        max_bytes: int,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``Fetcher.exchange`` under the same rules as ``get``."""
        return self._real.exchange(
            method, url_text, what, max_bytes=max_bytes, body=body, headers=headers
        )


def fetcher() -> Fetcher:
    """The guarded fetcher for URLs named by others; loopback only with `allow-local-urls`."""
    return cast("Fetcher", _FetcherOnFirstUse())


def stdout_console() -> Console:
    """Console for results on stdout (rich is loaded only to print a table or the like)."""
    from ._style import LineConsole

    def rich_console() -> Console:
        from ._console import safe_console

        return safe_console()

    return cast("Console", LineConsole(rich_console))


def stderr_console() -> Console:
    """Console for warnings on stderr (shown even under --quiet)."""
    from ._console import safe_console

    return safe_console(stderr=True)


def notes_console() -> Console:
    """Console for notes and progress on stderr (silent under --quiet)."""
    from ._console import safe_console

    return safe_console(stderr=True, quiet=STATE.quiet)


def print_lines(console: Console, text: str) -> None:
    """Print our own multi-line text (a line feed in a printed string is shown as ``\\x0a``)."""
    for line in text.splitlines():
        console.print(line)


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    empty: str | None = None,
) -> None:
    """Print a plain table of our own headers and escaped cells (rich is loaded only here);
    ``empty`` is printed instead when there is no row and it is given."""
    rows = list(rows)
    if not rows and empty is not None:
        console.print(empty)
        return
    from rich.table import Table

    table = Table(*headers)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def emit(
    as_json: bool, payload: dict[str, Any], human: Callable[[Console], None], data: bool = False
) -> None:
    """Print the result: one JSON object with --json, else the human rendering. Under --quiet
    only ``data`` (what the command was asked to show: a listing, a DID, a setting) is shown;
    a confirmation ("Granted …", "removed …") is not."""
    if as_json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    elif data or not STATE.quiet:
        human(stdout_console())


def _read_passphrase_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeystoreError(
            f"cannot read the passphrase file ({exc.strerror})", "check --passphrase-file"
        ) from None
    return text.splitlines()[0] if text else ""


def passphrase_source() -> PassphraseSource:
    """Passphrase from --passphrase-file, else $HEALTHWALLET_PASSPHRASE, else a prompt."""

    def get(new: bool) -> str:
        if STATE.passphrase_file is not None:
            value = _read_passphrase_file(STATE.passphrase_file)
        elif os.environ.get(PASSPHRASE_ENV) is not None:
            value = os.environ[PASSPHRASE_ENV]
        elif sys.stdin.isatty():
            import getpass

            value = getpass.getpass("New passphrase: " if new else "Passphrase: ")
            if new and getpass.getpass("Repeat passphrase: ") != value:
                raise UsageError("the passphrases did not match", "run the command again")
        else:
            raise KeystoreError(
                "a passphrase is needed and there is no terminal to ask for it",
                f"set {PASSPHRASE_ENV} or pass --passphrase-file",
            )
        if not value:
            raise KeystoreError("the passphrase is empty", "choose a passphrase of a few words")
        if new:
            _refuse_weak_passphrase(value)
        return value

    return get


def _refuse_weak_passphrase(value: str) -> None:
    """Refuse a trivially guessable new passphrase unless the user confirms it explicitly."""
    from ..passphrase_strength import estimate

    strength = estimate(value, ["healthwallet", "wallet", "health", "passphrase"])
    if not strength.weak or STATE.allow_weak_passphrase:
        return
    why = strength.warning or "it would be guessed quickly by anyone who copies identity.key"
    if sys.stdin.isatty():
        sys.stderr.write(f"warning: this passphrase is easy to guess ({why})\n")
        answer = input("Use it anyway? Type 'yes' to confirm: ")
        if answer.strip().lower() == "yes":
            return
    raise UsageError(
        f"the passphrase is too easy to guess ({why})",
        "choose four or more random words, or confirm with --allow-weak-passphrase",
    )


def unlock() -> Wallet:
    """Open and unlock the wallet of this invocation (through its unlock agent, if any)."""
    from ..agent.session import agent_for
    from ..unlock import open_wallet

    wallet_home = home()
    return open_wallet(wallet_home, passphrase_source(), agent=agent_for(wallet_home, os.environ))


def audit_log(wallet: Wallet) -> Any:
    """The wallet's audit log, able to check entries signed before a key rotation."""
    from ..audit import AuditLog
    from ..rotation import retired_identities

    return AuditLog(wallet.home, wallet.identity, retired=retired_identities(wallet))


def issued_grants(wallet: Wallet, with_audit: bool = True) -> Any:
    """The wallet's register of issued grants and consents, and its status lists."""
    from ..issued import IssuedGrants
    from ..rotation import retired_identities

    config = read_config(wallet.home)
    return IssuedGrants(
        wallet.home,
        wallet.identity,
        status_base_url=config.get("status-url") or None,
        audit=audit_log(wallet) if with_audit else None,
        retired=retired_identities(wallet),
    )


def note_local_status_list(status_list: str, reader: str, change: str) -> None:
    """Say on stderr that a credential names a status list only this machine can read."""
    if status_list.startswith("file:") and not STATE.quiet:
        sys.stderr.write(
            f"note: {escape(status_list)} is on this machine only; set `status-url` and run "
            f"`status publish` so {reader} can see {change} (or send them the published list)\n"
        )


def human_size(size: int) -> str:
    """A byte count for people (1.2 MiB)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def write_binary_out(out: str, write: Callable[[BinaryIO], object], what: str) -> str:
    """Run ``write(handle)`` into file ``out`` atomically (mode 0600), or stdout for `-`.

    Binary files are never written to a terminal. ``what`` names the file in errors.
    """
    if out == "-":
        if sys.stdout.isatty():
            raise UsageError(f"refusing to write {what} to a terminal", "use --out FILE")
        sys.stdout.flush()
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return "-"
    from ..safewrite import atomic_writer

    target = Path(out)
    if target.is_dir():
        raise UsageError("--out is a directory", "give a file name")
    with atomic_writer(target, what) as handle:
        write(handle)
    return str(target)


def note_date_expiry(text: str | None, expiry: datetime) -> None:
    """Say on stderr what a date-only --expires was taken to mean (the end of that local day)."""
    from ..timeutil import is_date_only

    if text is not None and is_date_only(text):
        local = expiry.astimezone()
        notes_console().print(
            f"note: --expires {text.strip()} means the end of that day in your time zone: "
            f"{local.strftime('%Y-%m-%d %H:%M:%S %z')} ({local.tzname()})"
        )
