"""Conventions scripts rely on: --json and --home before or after the subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

from healthwallet.cli import hoist_global_options


@pytest.mark.parametrize("argv", [
    ["--json", "--home", "H", "record", "list"],
    ["--home", "H", "--json", "record", "list"],
    ["record", "list", "--json", "--home", "H"],
    ["--json", "record", "--home=H", "list"],
])
def test_json_and_home_go_anywhere_on_the_line(argv: list[str]) -> None:
    hoisted = hoist_global_options(argv)
    assert hoisted[:1] in (["--home"], ["--home=H"])
    assert hoisted[-1] == "--json" or hoisted[-1] == "list"
    assert [a for a in hoisted if a in ("record", "list")] == ["record", "list"]


def test_a_json_after_double_dash_stays_an_argument() -> None:
    assert hoist_global_options(["--json", "record", "add", "--", "--json"]) == [
        "record", "add", "--json", "--", "--json"]


def test_transcript_json_before_and_after_the_command(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    before = cli.ok("--json", "--home", other, "where").json()
    after = cli.ok("where", "--home", other, "--json").json()
    assert before == after and before["home"] == str(other) and before["home_from"] == "--home"


def _on_path(tmp_path: Path, cli: Cli) -> dict[str, str]:
    """An env whose PATH has a `healthwallet` that runs this checkout, as an installed one would."""
    import os
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "healthwallet"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m healthwallet "$@"\n')
    launcher.chmod(0o755)
    return dict(cli.env, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_bash_completion_script_completes_commands_in_a_real_bash(cli: Cli,
                                                                  tmp_path: Path) -> None:
    import shutil
    import subprocess

    script = cli.ok("completion", "bash").out
    assert "complete -o default -F _healthwallet_completion healthwallet" in script
    bash = shutil.which("bash")
    assert bash is not None
    (tmp_path / "complete.bash").write_text(script)
    probe = ('source "$1"; COMP_WORDS=(healthwallet rec); COMP_CWORD=1; '
             '_healthwallet_completion healthwallet; echo "${COMPREPLY[@]}"; '
             'COMP_WORDS=(healthwallet record ""); COMP_CWORD=2; '
             '_healthwallet_completion healthwallet; echo "${COMPREPLY[@]}"')
    proc = subprocess.run([bash, "-c", probe, "probe", str(tmp_path / "complete.bash")],
                          capture_output=True, text=True, env=_on_path(tmp_path, cli),
                          timeout=60, check=False)
    first, second = proc.stdout.splitlines()[:2]
    assert first == "record", proc
    assert {"add", "list", "show", "rm"} <= set(second.split()), proc


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef healthwallet"),
                                               ("fish", "complete --command healthwallet")])
def test_zsh_and_fish_scripts_and_their_answers(cli: Cli, shell: str, marker: str) -> None:
    assert marker in cli.ok("completion", shell).out
    env = {"_HEALTHWALLET_COMPLETE": f"complete_{shell}",
           "_TYPER_COMPLETE_ARGS": "healthwallet key ",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    answer = cli(env=env)
    assert "export" in answer.out and "rotate" in answer.out


def test_an_unknown_shell_is_a_usage_error(cli: Cli) -> None:
    result = cli("completion", "tcsh")
    assert result.code == 2 and "use bash, zsh or fish" in result.err


def test_quiet_prints_data_and_errors_only(wallet: Cli, tmp_path: Path) -> None:
    source = tmp_path / "labs.pdf"
    source.write_bytes(b"%PDF-1.4\n%%EOF\n")
    added = wallet.ok("--quiet", "record", "add", source)
    assert added.out == "" and added.err == ""  # a confirmation is not data
    assert "labs.pdf" in wallet.ok("record", "list", "-q").out  # a listing is
    assert wallet.ok("id", "-q").out.strip().startswith("did:key:")
    as_json = wallet.ok("-q", "record", "add", source, "--allow-duplicate", "--json").json()  # JSON is never hidden
    assert as_json["records"][0]["label"] == "labs.pdf"
    failed = wallet("-q", "record", "show", "ffffffffffff0000")
    assert failed.code == 3 and failed.err.startswith("error: ")  # errors always
