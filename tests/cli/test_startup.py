"""Start-up stays lean: a command loads only what it uses (docs/adr/0016-startup-without-pydantic.md).

These are import-set assertions, not timings (timings: benchmarks/bench_startup.py). Each case
runs a fresh interpreter, runs the command, and reads ``sys.modules`` afterwards: a heavy
library imported at the top of any command module, or by typer while parsing, shows up here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import base_env
from small_grant import small_grant

# Libraries that cost tens of milliseconds to import and that most commands never use.
HEAVY = (
    "pydantic",
    "didkit",
    "duckdb",
    "pyarrow",
    "httpx",
    "nacl",
    "rich.console",  # a plain line is written without rich; a table loads it
    "rich.progress",
    "starlette",
    "uvicorn",
    "psycopg",
    "segno",
    "cryptography",
    "keyring",
    "eth_account",
    "fhirpathpy",
    "zxcvbn",
    "mnemonic",
    "http.client",  # the guarded fetcher's connection; loaded only to fetch a URL
    "asyncio",
)

# Runs one command line in this interpreter, then prints the heavy modules it loaded.
_PROBE = """
import json, sys
from healthwallet.cli import run
heavy = json.loads(sys.argv[1])
code = run(sys.argv[2:])
sys.stdout.flush()
sys.stderr.write("\\nPROBE " + json.dumps([code, sorted(m for m in heavy if m in sys.modules)]))
"""


def loaded_after(env: dict[str, str], *argv: str | Path) -> tuple[int, list[str]]:
    """Exit code and the heavy modules loaded by running ``healthwallet ARGV`` afresh."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *map(str, argv)],
        capture_output=True,
        env=env,
        timeout=120,
        text=True,
    )
    code, loaded = json.loads(proc.stderr.rsplit("PROBE ", 1)[1])
    return code, loaded


@pytest.fixture(scope="module")
def nobody_and_grant(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, str]:
    """An environment with no wallet, a small grant to someone, and its status list file."""
    return small_grant(tmp_path_factory.mktemp("startup"))


# (command line, heavy modules it may load because its work needs them)
CASES = {
    "config-list": (("config", "list"), ()),
    "config-list-json": (("config", "list", "--json"), ()),
    "where": (("where",), ()),
    "help": (("--help",), ()),
    "verify-help": (("verify", "--help"), ()),
    "record-add-help": (("record", "add", "--help"), ()),
    "unknown-command": (("no-such-command",), ()),
    "verify-missing-file": (("verify", "missing.hwgrant"), ()),
    # didkit checks the proof (on its async runtime), libsodium the envelope and DID keys.
    "verify-no-wallet": (("verify", "{grant}", "--status-list", "{list}"), ("didkit", "nacl",
                                                                              "asyncio")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_commands_start_without_heavy_modules(case: str, nobody_and_grant) -> None:
    env, grant, listed = nobody_and_grant
    argv, allowed = CASES[case]
    argv = tuple(a.format(grant=grant, list=listed) for a in argv)
    code, loaded = loaded_after(env, *argv)
    assert code in (0, 2, 3), (case, code)
    assert [m for m in loaded if m not in allowed] == [], (
        f"`healthwallet {' '.join(argv)}` loaded {loaded}: import heavy modules inside the "
        "function that needs them (healthwallet/cli/_common.py docstring)"
    )


def test_every_command_module_loads_and_builds_without_heavy_modules(tmp_path: Path) -> None:
    """Every module in the command registry, imported and built into click commands at once."""
    probe = """
import json, sys
import typer
from healthwallet.cli import _app, _coerce, _help
_help.install(); _coerce.install()
_app._register([])
typer.main.get_command(_app.app)
print(json.dumps(sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)))
"""
    proc = subprocess.run([sys.executable, "-c", probe, json.dumps(HEAVY)], capture_output=True,
                          env=base_env(tmp_path), text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []


def _parameters() -> list[tuple[str, object]]:
    import typer

    from healthwallet.cli import _app

    _app._register([])
    found: list[tuple[str, object]] = []

    def walk(command: object, path: str) -> None:
        for param in getattr(command, "params", []):
            found.append((f"{path} {param.name}", param))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(_app.app), "healthwallet")
    return found


def test_every_parameter_is_coerced_without_pydantic() -> None:
    """A new parameter type typer would hand to pydantic is caught here, not by a slow start."""
    from healthwallet.cli._coerce import lean_runtime_param

    missing = [where for where, param in _parameters()
               if lean_runtime_param(param.type_descriptor) is None]  # type: ignore[attr-defined]
    assert missing == [], (
        f"{missing} would import pydantic at start-up: give them a plain type (str, Path, int, "
        "bool, a list of those, Literal/Enum choices) or teach healthwallet/cli/_coerce.py"
    )


@pytest.mark.parametrize("value", ["plain", "", "-", "with space", "12", "ü", "a/b/../c"])
def test_lean_coercion_gives_what_typers_own_gives(value: str) -> None:
    from typer._coercion import build_runtime_param

    from healthwallet.cli._coerce import lean_runtime_param

    checked = set()
    for where, param in _parameters():
        desc = param.type_descriptor  # type: ignore[attr-defined]
        key = (repr(desc.annotation), desc.parameter_info.exists)
        if key in checked or desc.annotation is bool:
            continue
        checked.add(key)
        many = getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1
        given = (value,) if many else value

        def outcome(runtime: object) -> object:
            try:
                return runtime.coerce(given, param=param, ctx=None)  # type: ignore[attr-defined]
            except Exception as exc:  # the same kind of refusal, with the same message
                return (type(exc).__name__, str(getattr(exc, "message", exc)))

        assert outcome(lean_runtime_param(desc)) == outcome(build_runtime_param(desc)), where
