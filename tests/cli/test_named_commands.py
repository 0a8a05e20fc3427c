"""Hints that don't lie: every command named in an error/hint, the docs or the README exists.

Collects each `healthwallet …` command line written in backticks in the package's source (where
`error:`/`hint:` texts live), in docs/*.md and in README.md, and in `$ healthwallet …` example
lines, resolves it against the real command tree, and runs its `--help`. A hint once told users
to run `healthwallet grant list`, which does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from healthwallet.cli import _app

ROOT = Path(__file__).resolve().parents[2]
_BACKTICKED = re.compile(r"`healthwallet ([^`]*)`")
_EXAMPLE = re.compile(r"^(?:\$|\s*Example:) healthwallet (.*)$", re.MULTILINE)
_BARE_WORD = re.compile(r"^[a-z]+$")


def _named_commands() -> dict[str, str]:
    """Each command line named anywhere, mapped to one place that names it."""
    found: dict[str, str] = {}
    sources = [*sorted((ROOT / "healthwallet").rglob("*.py")), *sorted((ROOT / "docs").rglob("*.md")),
               ROOT / "README.md"]
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for pattern in (_BACKTICKED, _EXAMPLE):
            for match in pattern.finditer(text):
                line = match.group(1).strip()
                if line and not line.startswith("{"):  # an f-string placeholder, not a name
                    found.setdefault(line, f"{source.relative_to(ROOT)}")
    return found


def _root_command() -> Any:
    """The click command tree (typer vendors click, so it is duck-typed here)."""
    _app._register([])  # attach every command module
    command = typer.main.get_command(_app.app)
    assert hasattr(command, "commands")
    return command


def _resolve(root: Any, line: str) -> tuple[list[str], str | None]:
    """The command path a line names, and a complaint if it names something that is not there."""
    path: list[str] = []
    command = root
    words = []
    for word in line.split()[:3]:
        if word.startswith("-"):
            break  # options (and their values) follow the command path
        words.append(word)
    for word in words:
        if hasattr(command, "commands"):
            sub = command.commands.get(word)
            if sub is None:
                if path and not _BARE_WORD.match(word):
                    break
                return path, f"no command {' '.join([*path, word])!r}"
            path.append(word)
            command = sub
            continue
        # A leaf command: a bare lower-case word right after it reads as a subcommand that
        # does not exist (`grant list`), unless the command takes a free-text argument.
        takes_words = any(p.param_type_name == "argument" and p.name in _WORD_ARGUMENTS
                          for p in command.params)
        if _BARE_WORD.match(word) and not takes_words:
            return path, f"{' '.join(path)!r} has no subcommand {word!r}"
        break
    return path, None


# Positional arguments that take a plain word (a setting name, a ledger name, a study id …).
_WORD_ARGUMENTS = {"key", "name", "value", "ledger", "study", "kind", "setting", "shell"}

NAMED = _named_commands()


@pytest.fixture(autouse=True)
def _keep_the_test_runner_dumpable(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run the CLI inside the pytest process: its core-dump hardening must not
    lower this process's limits (the processes later tests start inherit them)."""
    from healthwallet import hardening

    monkeypatch.setattr(hardening, "disable_core_dumps", lambda: True)


def test_the_collection_finds_the_commands_people_are_told_to_run() -> None:
    assert len(NAMED) > 30
    assert any(line.startswith("record add") for line in NAMED)


def test_every_named_command_exists() -> None:
    root = _root_command()
    complaints = []
    for line, where in sorted(NAMED.items()):
        _path, complaint = _resolve(root, line)
        if complaint:
            complaints.append(f"{where} names `healthwallet {line}`: {complaint}")
    assert not complaints, "\n".join(complaints)


def _named_paths() -> list[str]:
    root = _root_command()
    return sorted({" ".join(_resolve(root, line)[0]) for line in NAMED} - {""})


@pytest.mark.parametrize("path", _named_paths())
def test_the_help_of_every_named_command_runs(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _app.run_app([*path.split(), "--help"]) == 0, path
    assert f"Usage: healthwallet {path}" in capsys.readouterr().out


def _leaf_paths(command: Any, path: tuple[str, ...] = ()) -> list[str]:
    if hasattr(command, "commands"):
        return [p for name, sub in sorted(command.commands.items())
                for p in _leaf_paths(sub, (*path, name))]
    return [" ".join(path)]


LEAVES = _leaf_paths(_root_command())
_INTERNAL = re.compile(r"<[a-z][\w\[\], ]*>|\{[A-Za-z_.]+\}")


@pytest.mark.parametrize("path", LEAVES)
def test_every_command_help_has_an_example_and_no_internal_metavars(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _app.run_app([*path.split(), "--help"]) == 0
    text = capsys.readouterr().out
    assert f"Example: healthwallet {path}" in text, text
    assert not _INTERNAL.findall(text), _INTERNAL.findall(text)
    assert "......" not in text


@pytest.mark.parametrize("group", ["", "record", "config", "key", "anchor", "status"])
def test_command_listings_are_not_cut_mid_sentence(
    group: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _app.run_app([*group.split(), "--help"]) == 0
    listing = capsys.readouterr().out.split("Commands:", 1)[1]
    assert "..." not in listing, listing
