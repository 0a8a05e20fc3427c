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
