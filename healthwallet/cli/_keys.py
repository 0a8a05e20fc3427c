"""`healthwallet key …` and `healthwallet keystore …`: recovery phrase, rotation, migration."""

from __future__ import annotations

import getpass
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from ._common import (
    JsonOption,
    emit,
    home,
    notes_console,
    passphrase_source,
    print_lines,
    stderr_console,
    unlock,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..rotation import Checkpoint

key_app = typer.Typer(
    help="Show the recovery phrase, or rotate the identity key.", no_args_is_help=True
)
keystore_app = typer.Typer(
    help="Move the identity key between the OS keyring and a passphrase file.",
    no_args_is_help=True,
)

PHRASE_WARNING = (
    "WARNING: these 24 words ARE your wallet identity. Anyone who sees them can act as you and,\n"
    "with a backup file, read every record. Write them on paper and keep it somewhere safe.\n"
    "Do not photograph, paste, email or store them online. healthwallet never asks for them\n"
    "except in `init --from-phrase` and `restore`."
)
ROTATE_NOTE = (
    "Your recovery phrase has changed. Run `healthwallet key export --phrase` and write down the\n"
    "new one, then make a new backup: backups made before now open only with the old phrase."
)

PhraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--phrase-file",
        help="Read the 24-word recovery phrase from this file (else it is asked for).",
    ),
]

# Test-only crash injection: with both variables set, `key rotate` SIGKILLs itself right after
# the named step (see rotation.py); tests/cli/test_rotation.py drives every step this way.
_CRASH_ENV = "HEALTHWALLET_TEST_CRASH_AT"


def read_phrase(phrase_file: Path | None) -> bytes:
    """The identity seed from --phrase-file, else from a hidden prompt on the terminal."""
    if phrase_file is not None:
        from ..recovery import read_phrase_file

        text = read_phrase_file(phrase_file)
    elif sys.stdin.isatty():
        text = getpass.getpass("Recovery phrase (24 words, input hidden): ")
    else:
        raise UsageError(
            "a recovery phrase is needed and there is no terminal to ask for it",
            "pass --phrase-file FILE (never the words themselves on the command line)",
        )
    from ..recovery import seed_from_phrase

    return seed_from_phrase(text)


def _test_checkpoint() -> Checkpoint | None:
    crash_at = os.environ.get(_CRASH_ENV)
    if not crash_at or "PYTEST_CURRENT_TEST" not in os.environ:
        return None

    def step(name: str) -> None:
        if name == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    return step


@key_app.command("export")
def cmd_export(
    phrase: Annotated[
        bool, typer.Option("--phrase", help="Show the identity as a 24-word recovery phrase.")
    ] = False,
    show_secret: Annotated[
        bool,
        typer.Option("--show-secret", help="Allow the phrase in --json output."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the recovery phrase (BIP-39, 24 words) of this wallet's identity.

    Example: healthwallet key export --phrase > phrase.txt
    """
    if not phrase:
        raise UsageError("say what to export", "use `healthwallet key export --phrase`")
    if as_json and not show_secret:
        raise UsageError(
            "--json would put the recovery phrase in machine output; refused",
            "add --show-secret if you really want it there",
        )
    wallet = unlock()
    from ..recovery import phrase_from_seed

    words = phrase_from_seed(wallet.identity.seed)
    print_lines(stderr_console(), PHRASE_WARNING)

    def human(out: Console) -> None:
        # stdout holds the phrase and nothing else, so `key export --phrase > phrase.txt`
        # reads back with --phrase-file as it is; the DID is a note on stderr.
        listed = words.split()
        for row in range(6):
            out.print(
                "  ".join(f"{row * 4 + col + 1:>2}. {listed[row * 4 + col]:<9}" for col in range(4))
            )
        notes_console().print(f"DID: {wallet.did}")

    emit(as_json, {"phrase": words, "did": wallet.did}, human, data=True)


@key_app.command("rotate")
def cmd_rotate(as_json: JsonOption = False) -> None:
    """Replace the identity key: new DID, every record re-wrapped, old grants still verifiable.

    Example: healthwallet key rotate
    """
    from ..rotation import rotate_identity

    result = rotate_identity(home(), passphrase_source(), checkpoint=_test_checkpoint())
    payload = {"old_did": result.old_did, "new_did": result.new_did, "records": result.records}

    def human(out: Console) -> None:
        out.print(f"Rotated the identity key; {result.records} record key(s) re-wrapped.")
        out.print(f"Old DID: {result.old_did}")
        out.print(f"New DID: {result.new_did}")

    emit(as_json, payload, human)
    print_lines(notes_console(), ROTATE_NOTE)


@keystore_app.command("migrate")
def cmd_migrate(
    to: Annotated[str, typer.Option("--to", help="keyring or file.")],
    as_json: JsonOption = False,
) -> None:
    """Move the identity key to the OS keyring or to a passphrase-protected file.

    Example: healthwallet keystore migrate --to file
    """
    if to not in ("keyring", "file"):
        raise UsageError(f"unknown keystore {to!r}", "use --to keyring or --to file")
    from ..rotation import migrate_keystore

    info = migrate_keystore(home(), to, passphrase_source())  # type: ignore[arg-type]
    where = "OS keyring" if to == "keyring" else "passphrase-protected file"
    emit(
        as_json,
        {"keystore": info.keystore, "did": info.did},
        lambda out: out.print(f"The identity key is now in the {where}; the old copy is removed."),
    )


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(key_app, name="key")
    app.add_typer(keystore_app, name="keystore")
