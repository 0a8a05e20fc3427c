"""The command line: a thin layer that parses, calls the core, and renders.

``main`` owns the process exit. It flushes and leaves with ``os._exit`` so that the exit
code is exactly the one we chose: didkit 0.3.3 has been seen to crash during
interpreter shutdown after its async calls (exit 139 or 134), which would otherwise
replace a correct code with a signal.

Adding a command (docs/adr/0016-startup-without-pydantic.md): define it in a module with a
``register(app)`` function, name it in ``_app._COMMAND_MODULES`` (a run imports only the
module of the command it names, and builds only that command), import at the module's top only
typer, the standard library and light core modules (anything heavier inside the function that
uses it), and give parameters plain types (str, Path, int, bool, lists of them, choices) so
``_coerce`` handles them without pydantic. tests/cli/test_startup.py checks all of this.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from healthwallet import __version__

# Options that apply to every command and may be written anywhere on the line.
_GLOBAL_VALUE_OPTIONS = ("--home", "--passphrase-file")
_GLOBAL_FLAGS = ("--debug", "--allow-weak-passphrase", "--quiet", "-q")


# Options of every command that may also be written before the command name.
_COMMAND_FLAGS = ("--json",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move global options (``--home X``, ``--debug`` …) before the command name, and command
    flags written before it (``healthwallet --json grants``) to after it."""
    front: list[str] = []
    rest: list[str] = []
    early: list[str] = []  # command flags seen before the command name
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(early)
            early = []
            rest.extend(argv[i:])
            break
        if arg in _COMMAND_FLAGS and not any(not a.startswith("-") for a in rest):
            early.append(arg)
            i += 1
            continue
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_VALUE_OPTIONS:
            if "=" in arg:
                front.append(arg)
            else:
                front.extend(argv[i : i + 2])
                i += 1
        elif arg in _GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest + early


def run(argv: list[str]) -> int:
    """Run one command line and return its exit code (never raises, never exits)."""
    if argv in (["--version"], ["-V"]):
        sys.stdout.write(f"healthwallet {__version__}\n")
        return 0
    from ._app import run_app

    return run_app(hoist_global_options(argv))


def main() -> NoReturn:
    """Console-script entry point."""
    code = run(sys.argv[1:])
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass
    try:
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(code)
