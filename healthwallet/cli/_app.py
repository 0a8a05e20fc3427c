"""The typer application and the one place errors become exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from healthwallet import __version__, hardening

from ..errors import EXIT_INTERNAL, EXIT_USAGE, HealthWalletError
from ..termsafe import escape, escape_lines
from . import _coerce, _common, _help, _style
from ._common import STATE
from ._style import paint

app = typer.Typer(
    name="healthwallet",
    help="A patient-held health wallet: your identity, your encrypted records, your grants.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"healthwallet {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global(
    home: Annotated[
        str | None,
        typer.Option(
            "--home", help="Wallet directory (else $HEALTHWALLET_HOME, else the platform default)."
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="Read the keystore passphrase from the first line of this file.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only data and errors: no confirmations, notes or progress."
        ),
    ] = False,
    allow_weak_passphrase: Annotated[
        bool,
        typer.Option(
            "--allow-weak-passphrase",
            help="Accept a new keystore passphrase that is easy to guess (not recommended).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """A patient-held health wallet."""
    STATE.home_flag = home
    STATE.passphrase_file = passphrase_file
    STATE.debug = debug
    STATE.allow_weak_passphrase = allow_weak_passphrase
    STATE.quiet = quiet


# Which module defines each top-level command, so a run imports only what it needs.
_COMMAND_MODULES: dict[str, str] = {
    "init": "_wallet_cmds",
    "id": "_wallet_cmds",
    "doctor": "_wallet_cmds",
    "where": "_wallet_cmds",
    "completion": "_completion",
    "config": "_wallet_cmds",
    "record": "_records",
    "anchor": "_anchor",
    "ledger": "_anchor",
    "grant": "_grants",
    "grants": "_grants",
    "revoke": "_grants",
    "status": "_grants",
    "log": "_grants",
    "verify": "_grants",
    "open": "_grants",
    "credential": "_trust",
    "trust": "_trust",
    "share": "_share",
    "research": "_share",
    "key": "_keys",
    "keystore": "_keys",
    "backup": "_backup",
    "restore": "_backup",
    "unlock": "_agent",
    "lock": "_agent",
    "link": "_links",
    "import": "_links",
    "relay": "_relay",
}
_VALUE_OPTIONS = ("--home", "--passphrase-file")


def _command_name(argv: list[str]) -> str | None:
    """The top-level command in ``argv`` (global options come first, see hoisting)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _register(argv: list[str]) -> None:
    """Attach the command's module, or every module for help and unknown commands.

    Then keep only the command asked for: typer turns each registered function into a click
    command (its signature and annotations evaluated) before parsing, so a module's other
    commands would cost start-up time for nothing.
    """
    import importlib

    command = _command_name(argv) or ""
    wanted = _COMMAND_MODULES.get(command)
    modules = [wanted] if wanted else list(dict.fromkeys(_COMMAND_MODULES.values()))
    app.registered_commands = []  # a fresh set for each run (tests run the app in-process)
    app.registered_groups = []
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(app)
    if wanted:
        app.registered_commands = [
            info
            for info in app.registered_commands
            if (info.name or typer.main.get_command_name(getattr(info.callback, "__name__", "")))
            == command
        ]
        app.registered_groups = [info for info in app.registered_groups if info.name == command]


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


def report_error(message: str, hint: str, code: int, as_json: bool) -> int:
    """Write ``error:``/``hint:`` to stderr (and a JSON error object with --json).

    Both lines pass through ``termsafe.escape``: a message may quote a file, a credential or a
    URL, and must not be able to redraw the terminal. (JSON escapes them by itself.)
    """
    message = escape(" ".join(message.split()))
    hint = escape(" ".join(hint.split()))
    if as_json:
        sys.stdout.write(
            json.dumps({"error": {"message": message, "hint": hint, "exit_code": code}}) + "\n"
        )
    write_problem(message, hint)
    return code


def write_problem(message: str, hint: str) -> None:
    """The two stderr lines; only the ``error:`` and ``hint:`` labels are ever coloured."""
    error, hint_label = paint("error:", "bad", sys.stderr), paint("hint:", "hint", sys.stderr)
    sys.stderr.write(f"{error} {message}\n{hint_label} {hint}\n")


def _print_trace() -> None:
    """The --debug traceback, escaped like every other line (it quotes messages)."""
    import traceback

    sys.stderr.write(escape_lines(traceback.format_exc()))


def run_app(argv: list[str]) -> int:
    """Run the app on ``argv``; map every outcome to a documented exit code."""
    if _command_name(argv) is not None:
        hardening.disable_core_dumps()  # before any secret is read (docs/threat-model.md)
    from ._completion import completing

    if completing():
        argv = []  # the shell passes the words in the environment; register every command
    _register(argv)
    _help.install()
    _coerce.install()
    as_json = _wants_json(argv)
    _style.set_json(as_json)
    STATE.debug = "--debug" in argv
    try:
        result = app(args=argv, prog_name="healthwallet", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except HealthWalletError as exc:
        if STATE.debug:
            _print_trace()
        return report_error(exc.message, exc.hint, exc.exit_code, as_json)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        write_problem("interrupted", "nothing was left half-done")
        return 130
    except BrokenPipeError:
        return 0
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
            return EXIT_USAGE
        command = ctx.command_path if ctx is not None else "healthwallet"
        return report_error(exc.format_message(), f"see `{command} --help`", EXIT_USAGE, as_json)
    except Exception as exc:
        database = _database_error(exc, as_json)
        if database is not None:
            return database
        if STATE.debug:
            _print_trace()
        return _internal(exc, as_json)
    finally:
        _common.STATE.passphrase_file = None


def _database_error(exc: Exception, as_json: bool) -> int | None:
    """The exit for an sqlite3 error, None for any other exception. (sqlite3 is looked up, not
    imported: a run that never loaded it cannot have raised its errors.)"""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or not isinstance(exc, sqlite3.DatabaseError):
        return None
    if STATE.debug:
        _print_trace()
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return _internal(exc, as_json)  # our misuse of the API, not the file's fault
    # An index, registry or log in the wallet home that is damaged, truncated, missing
    # its tables or locked past the timeout: the home's bytes are input like any other.
    return report_error(
        f"a database in the wallet home is damaged or unreadable ({type(exc).__name__})",
        "run `healthwallet doctor`; restore the wallet from a backup if it is damaged",
        EXIT_USAGE,
        as_json,
    )


def _internal(exc: Exception, as_json: bool) -> int:
    return report_error(
        f"internal error ({type(exc).__name__})",
        "run again with --debug and report the trace (it holds no record content)",
        EXIT_INTERNAL,
        as_json,
    )
