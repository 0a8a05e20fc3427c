"""`healthwallet backup` and `healthwallet restore`."""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..errors import KeystoreError, UsageError
from ._common import JsonOption, emit, home, human_size, passphrase_source, unlock
from ._keys import PhraseFileOption, read_phrase
from ._progress import progress, progress_shown

if TYPE_CHECKING:
    from rich.console import Console

    from ..backup import BackupKey

BACKUP_PASSPHRASE_ENV = "HEALTHWALLET_BACKUP_PASSPHRASE"  # noqa: S105 (a variable name)

BackupPassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--backup-passphrase-file",
        help="Read the backup passphrase from the first line of this file.",
    ),
]


def _read_first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeystoreError(
            f"cannot read the backup passphrase file ({exc.strerror})",
            "check --backup-passphrase-file",
        ) from None
    return text.splitlines()[0] if text else ""


def _backup_passphrase(path: Path | None, new: bool) -> str | None:
    """From --backup-passphrase-file, else $HEALTHWALLET_BACKUP_PASSPHRASE, else a prompt."""
    if path is not None:
        value = _read_first_line(path)
    elif os.environ.get(BACKUP_PASSPHRASE_ENV) is not None:
        value = os.environ[BACKUP_PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        if not new:
            value = getpass.getpass(
                "Backup passphrase (leave empty to type your recovery phrase instead): "
            )
            return value or None
        value = getpass.getpass("New backup passphrase: ")
        if getpass.getpass("Repeat backup passphrase: ") != value:
            raise UsageError("the passphrases did not match", "run the command again")
    else:
        if not new:
            return None
        raise KeystoreError(
            "a backup passphrase is needed and there is no terminal to ask for it",
            f"set {BACKUP_PASSPHRASE_ENV} or pass --backup-passphrase-file",
        )
    if not value:
        raise KeystoreError("the backup passphrase is empty", "choose a passphrase of a few words")
    return value


def cmd_backup(
    out: Annotated[Path, typer.Option("--out", "-o", help="The backup file to write.")],
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help="Also let a backup passphrase open it (from $HEALTHWALLET_BACKUP_PASSPHRASE, "
            "--backup-passphrase-file or a prompt).",
        ),
    ] = False,
    backup_passphrase_file: BackupPassphraseFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write one encrypted file holding the whole wallet, sealed to your identity.

    Example: healthwallet backup --out wallet.hwbackup
    """
    from ..backup import create_backup

    wallet = unlock()
    secret = None
    if passphrase or backup_passphrase_file is not None:
        secret = _backup_passphrase(backup_passphrase_file, new=True)
    size = _tree_bytes(wallet.home) if progress_shown(as_json) else None
    with progress("backing up", size, as_json=as_json) as advance:
        result = create_backup(wallet, out, passphrase=secret, overwrite=force, on_progress=advance)
    payload = {
        "file": str(result.path),
        "records": result.records,
        "bytes": result.bytes,
        "did": wallet.did,
        "passphrase": secret is not None,
    }

    def human(console: Console) -> None:
        console.print(
            f"Wrote {result.path} ({human_size(result.bytes)}, {result.records} record(s))"
        )
        opens = "your recovery phrase" + (" or the backup passphrase" if secret else "")
        console.print(f"It opens with {opens}.")

    emit(as_json, payload, human)


def _backup_key(
    file: Path, phrase_file: Path | None, backup_passphrase_file: Path | None
) -> BackupKey:
    from ..backup import BackupKey, inspect_backup

    if phrase_file is not None:
        return BackupKey(seed=read_phrase(phrase_file))
    if backup_passphrase_file is not None or os.environ.get(BACKUP_PASSPHRASE_ENV) is not None:
        return BackupKey(passphrase=_backup_passphrase(backup_passphrase_file, new=False))
    if sys.stdin.isatty():
        if inspect_backup(file).has_passphrase:
            secret = _backup_passphrase(None, new=False)
            if secret:
                return BackupKey(passphrase=secret)
        return BackupKey(seed=read_phrase(None))
    raise KeystoreError(
        "restoring needs the recovery phrase or the backup passphrase, and there is no terminal",
        f"pass --phrase-file FILE, or set {BACKUP_PASSPHRASE_ENV}",
    )


def cmd_restore(
    file: Annotated[Path, typer.Argument(help="The backup file.")],
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Add the backup's missing records to the existing wallet."),
    ] = False,
    phrase_file: PhraseFileOption = None,
    backup_passphrase_file: BackupPassphraseFileOption = None,
    keystore: Annotated[
        str | None,
        typer.Option(
            "--keystore",
            help="Where the restored identity key lives: keyring or file (default as for init).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a wallet from a backup (into --home), or merge its records into one.

    Example: healthwallet restore wallet.hwbackup --home ~/wallet --phrase-file phrase.txt
    """
    if keystore not in (None, "keyring", "file"):
        raise UsageError(
            f"unknown keystore {keystore!r}", "use --keystore keyring or --keystore file"
        )
    from ..backup import inspect_backup, restore_backup

    inspect_backup(file)  # a damaged or foreign file is reported before asking for secrets
    key = _backup_key(file, phrase_file, backup_passphrase_file)
    kind: Literal["keyring", "file"] | None = keystore  # type: ignore[assignment]
    with progress("restoring", file.stat().st_size, as_json=as_json) as advance:
        result = restore_backup(
            file,
            home(),
            key,
            keystore=kind,
            keystore_passphrase=passphrase_source(),
            merge=merge,
            on_progress=advance,
        )
    payload = {
        "home": str(result.home),
        "did": result.did,
        "records": result.records,
        "added": result.added,
        "skipped": result.skipped,
        "merged": result.merged,
    }

    def human(console: Console) -> None:
        if result.merged:
            console.print(
                f"Merged into {result.home}: {result.added} record(s) added, "
                f"{result.skipped} already present."
            )
        else:
            console.print(f"Restored {result.records} record(s) into {result.home}")
        console.print(f"DID: {result.did}")

    emit(as_json, payload, human)


def _tree_bytes(root: Path) -> int:
    """About how many bytes a backup of ``root`` reads (for the progress bar only)."""
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.command("backup")(cmd_backup)
    app.command("restore")(cmd_restore)
