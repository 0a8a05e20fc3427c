"""`healthwallet anchor …` and `healthwallet ledger list`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..wallet import Wallet, read_config
from ._common import JsonOption, emit, print_table, unlock
from ._progress import progress

if TYPE_CHECKING:
    from rich.console import Console

    from ..vault import Vault

anchor_app = typer.Typer(
    help="Anchor record commitments to a ledger and check them.", invoke_without_command=True
)
ledger_app = typer.Typer(help="Ledger backends.", no_args_is_help=True)

LedgerOption = Annotated[
    str | None,
    typer.Option("--ledger", help="Ledger backend (default: the `ledger` setting, else local)."),
]


def _setting_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def ledger_settings(config: dict[str, str], name: str) -> dict[str, Any]:
    """The settings of backend ``name``: every `NAME.key` setting, as `key` (dashes → _)."""
    prefix = name + "."
    return {
        key[len(prefix) :].replace("-", "_"): _setting_value(value)
        for key, value in config.items()
        if key.startswith(prefix) and value != ""
    }


def open_ledger(wallet: Wallet, name: str | None) -> Any:
    """The ledger backend to use, built with the wallet's settings."""
    from ..ledger import LedgerContext, load_ledger

    config = read_config(wallet.home)
    chosen = name or config.get("ledger") or "local"
    ctx = LedgerContext(
        home=wallet.home, identity=wallet.identity, settings=ledger_settings(config, chosen)
    )
    return load_ledger(chosen, ctx)


def _commitments(wallet: Wallet) -> tuple[Vault, dict[str, str]]:
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    return vault, {record.id: record.commitment for record in vault.records()}


@anchor_app.callback()
def cmd_anchor(
    ctx: typer.Context, ledger: LedgerOption = None, as_json: JsonOption = False
) -> None:
    """Publish the Merkle root of every record not yet anchored (one ledger write per batch).

    Example: healthwallet anchor --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..anchors import AnchorStore

    wallet = unlock()
    vault, commitments = _commitments(wallet)
    vault.close()
    backend = open_ledger(wallet, ledger)
    with (
        AnchorStore(wallet.home) as store,
        progress("anchoring", None, as_json=as_json, unit="batches") as advance,
    ):
        if advance is not None:
            advance(0)  # a ledger may take a while to confirm: show that work is going on
        outcome = store.anchor_pending(commitments, backend)
    payload = outcome.to_json()

    def human(out: Console) -> None:
        if payload["count"] == 0:
            out.print("Nothing to anchor: every record is already anchored.")
            return
        out.print(f"Anchored {payload['count']} record(s) on {payload['ledger']}")
        out.print(f"  root         {payload['root']}")
        out.print(f"  anchored at  {payload['anchored_at'] or '(not yet confirmed)'}")

    emit(as_json, payload, human)


@anchor_app.command("status")
def cmd_status(ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """Count pending, anchored and confirmed records (asks the ledger when it is reachable).

    Example: healthwallet anchor status
    """
    from ..anchors import AnchorStore

    wallet = unlock()
    vault, commitments = _commitments(wallet)
    vault.close()
    backend = open_ledger(wallet, ledger)
    with AnchorStore(wallet.home) as store:
        status = store.status(commitments, backend)
    payload = dict(status.to_json(), problems=list(status.problems))

    def human(out: Console) -> None:
        counts = [str(status.pending), str(status.anchored), str(status.confirmed)]
        print_table(out, ("pending", "anchored", "confirmed"), [counts])
        for problem in status.problems:
            out.print(f"note: {problem}")

    emit(as_json, payload, human, data=True)


@anchor_app.command("verify")
def cmd_verify(
    record_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    ledger: LedgerOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the proof only; do not ask the ledger.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Recompute a record's commitment; check its proof against the root, the root on the ledger.

    Example: healthwallet anchor verify 3f2a
    """
    from ..anchors import AnchorStore

    wallet = unlock()
    from ..vault import Vault

    vault = Vault(wallet.home, wallet.identity.vault_key)
    record = vault.verify(record_id)  # decrypts and recomputes SHA-256(salt || content)
    vault.close()
    with AnchorStore(wallet.home) as store:
        proof = store.proof_for(record.id, record.commitment)
        backend = None if offline else open_ledger(wallet, ledger or proof.get("ledger"))
        result = store.verify_record(record.id, record.commitment, backend)
    payload = dict(result.to_json(), problems=list(result.problems))

    def human(out: Console) -> None:
        from ._style import line, mark

        out.print(line(mark(result.valid), f" record {record.id}"))
        out.print(f"  root         {result.root}")
        out.print(f"  ledger       {result.ledger}")
        out.print(f"  anchored at  {result.anchored_at}")
        for problem in result.problems:
            out.print(line("  ", mark(False), f" {problem}"))

    emit(as_json, payload, human)
    if not result.valid:
        raise typer.Exit(1)


@ledger_app.command("list")
def cmd_ledger_list(as_json: JsonOption = False) -> None:
    """List the installed ledger backends (entry-point group `healthwallet.ledgers`).

    Example: healthwallet ledger list
    """
    from ..ledger import available_ledgers

    names = available_ledgers()

    def human(out: Console) -> None:
        for name in names:
            out.print(name)

    emit(as_json, {"ledgers": names}, human, data=True)


def register(app: typer.Typer) -> None:
    """Attach these commands to the app."""
    app.add_typer(anchor_app, name="anchor")
    app.add_typer(ledger_app, name="ledger")
