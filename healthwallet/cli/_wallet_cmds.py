"""Commands about the wallet itself: init, id, doctor, config."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ..errors import UsageError
from ..wallet import read_config, set_config
from ._common import STATE, JsonOption, emit, home, passphrase_source, unlock
from ._keys import PhraseFileOption, read_phrase

if TYPE_CHECKING:
    from rich.console import Console


def cmd_init(
    keystore: Annotated[
        str | None,
        typer.Option(
            "--keystore",
            help="Where the identity key lives: keyring or file (default: keyring when available).",
        ),
    ] = None,
    from_phrase: Annotated[
        bool,
        typer.Option(
            "--from-phrase",
            help="Recreate an identity from its 24-word recovery phrase (asked for, or "
            "--phrase-file).",
        ),
    ] = False,
    phrase_file: PhraseFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a wallet: a new identity key (or one from a recovery phrase) and an empty vault.

    Example: healthwallet init --keystore file
    """
    if keystore not in (None, "keyring", "file"):
        raise UsageError(
            f"unknown keystore {keystore!r}", "use --keystore keyring or --keystore file"
        )
    kind: Literal["keyring", "file"] | None = keystore  # type: ignore[assignment]
    seed = read_phrase(phrase_file) if from_phrase or phrase_file is not None else None
    from ..unlock import init_wallet

    wallet = init_wallet(home(), kind, passphrase_source(), seed=seed)
    payload = {"did": wallet.did, "keystore": wallet.info.keystore, "home": str(wallet.home)}

    def human(out: Console) -> None:
        out.print(f"Created a wallet in {wallet.home}")
        where = "OS keyring" if wallet.info.keystore == "keyring" else "passphrase-protected file"
        out.print(f"Identity key: stored in the {where}")
        out.print(f"Your DID: {wallet.did}")
        out.print("Next, so that nothing is lost if this machine is:")
        out.print("  write down your recovery phrase:  healthwallet key export --phrase")
        out.print("  keep an encrypted backup:         healthwallet backup --out wallet.hwbackup")

    emit(as_json, payload, human)


def cmd_id(
    history: Annotated[
        bool,
        typer.Option("--history", help="Also list key rotations, with their signatures checked."),
    ] = False,
    did_document: Annotated[
        bool,
        typer.Option(
            "--did-document",
            help="Print the DID document to host for your `did-web` setting (always JSON).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print this wallet's DID.

    Example: healthwallet id
    """
    from ..rotation import identity_history
    from ..wallet import read_info

    info = read_info(home())
    if did_document:
        from ..didweb import document_for

        if history:
            raise UsageError("--did-document and --history do not go together")
        name = read_config(home())["did-web"]
        if not name:
            raise UsageError(
                "no did:web is set for this wallet",
                "run `healthwallet config set did-web did:web:your.domain:path` first",
            )
        sys.stdout.write(json.dumps(document_for(name, info.did), indent=2) + "\n")
        return
    if not history:
        emit(as_json, {"did": info.did}, lambda out: out.print(info.did), data=True)
        return
    entries = identity_history(info)

    def human(out: Console) -> None:
        from ._style import line, mark

        out.print(info.did)
        if not entries:
            out.print("No key rotations.")
        for entry in entries:
            ok = bool(entry["verified"])
            out.print(
                line(
                    f"{entry['rotated']}  {entry['old_did']} → {entry['new_did']}  ",
                    mark(ok, "signed by both keys" if ok else "NOT VERIFIED"),
                )
            )

    emit(as_json, {"did": info.did, "history": entries}, human, data=True)
    if not all(entry["verified"] for entry in entries):
        raise typer.Exit(1)


def cmd_where(as_json: JsonOption = False) -> None:
    """Show the active wallet home, where that choice came from, and where the key is kept.

    Example: healthwallet where --json
    """
    from ..wallet import home_source, read_info, wallet_exists

    active = home()
    payload: dict[str, Any] = {
        "home": str(active),
        "home_from": home_source(STATE.home_flag),
        "wallet": wallet_exists(active),
    }
    if payload["wallet"]:
        from ..keystore import KEYRING_SERVICE, KEYSTORE_FILE

        info = read_info(active)
        payload["did"] = info.did
        payload["keystore"] = info.keystore
        payload["key_location"] = (
            str(active / KEYSTORE_FILE)
            if info.keystore == "file"
            else f"OS keyring, service {KEYRING_SERVICE!r}, user {info.wallet_id!r}"
        )

    def human(out: Console) -> None:
        out.print(f"home      {payload['home']}  (from {payload['home_from']})")
        if not payload["wallet"]:
            out.print("wallet    none here: create one with `healthwallet init`")
            return
        out.print(f"DID       {payload['did']}")
        out.print(f"keystore  {payload['keystore']}: {payload['key_location']}")

    emit(as_json, payload, human, data=True)


def cmd_doctor(as_json: JsonOption = False) -> None:
    """Check the keystore, the index, and that every record decrypts and matches its commitment.

    Example: healthwallet doctor
    """
    from ..dedupe import catch_up

    wallet = unlock()
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    problems, repaired = vault.doctor()
    catch_up(vault, wallet.identity.vault_key, budget=None)  # duplicate detection for all records
    count = len(vault)
    vault.close()
    payload = {"ok": not problems, "problems": problems, "records": count, "repaired": repaired}

    def human(out: Console) -> None:
        from ._style import line, mark

        out.print(line(mark(True), " keystore opens"))
        out.print(line(mark(not problems), f" {count} record(s) checked"))
        if repaired:
            out.print(f"  removed {repaired} leftover partial file(s) from interrupted writes")
        for problem in problems:
            out.print(line(mark(False), f" {problem['record'] or 'index'}: {problem['problem']}"))
        out.print("No problems found." if not problems else f"{len(problems)} problem(s) found.")

    emit(as_json, payload, human)
    if problems:
        raise typer.Exit(1)


config_app = typer.Typer(help="Read and change settings.", no_args_is_help=True)


@config_app.command("set")
def cmd_config_set(key: str, value: str, as_json: JsonOption = False) -> None:
    """Change a setting (e.g. `status-url`, `ledger`, `max-expiry-days`).

    Example: healthwallet config set status-url https://ana.example/status/
    """
    config = set_config(home(), key, value)
    emit(
        as_json, {"key": key, "value": config[key]}, lambda out: out.print(f"{key} = {config[key]}")
    )


@config_app.command("get")
def cmd_config_get(key: str, as_json: JsonOption = False) -> None:
    """Print one setting.

    Example: healthwallet config get max-expiry-days
    """
    config = read_config(home())
    if key not in config:
        raise UsageError(
            f"unknown setting {key!r}", "list settings with `healthwallet config list`"
        )
    emit(as_json, {"key": key, "value": config[key]}, lambda out: out.print(config[key]), data=True)


@config_app.command("list")
def cmd_config_list(as_json: JsonOption = False) -> None:
    """Print every setting.

    Example: healthwallet config list --json
    """
    config = read_config(home())

    def human(out: Console) -> None:
        # One `setting  value` line each (as `git config --list` does), and no table to load.
        width = max((len(key) for key in config), default=0)
        for key, value in sorted(config.items()):
            out.print(f"{key:<{width}}  {value or '(default)'}")

    emit(as_json, {"config": config}, human, data=True)


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.command("init")(cmd_init)
    app.command("id")(cmd_id)
    app.command("doctor")(cmd_doctor)
    app.command("where")(cmd_where)
    app.add_typer(config_app, name="config")
