"""Long work shows a progress bar on a terminal's stderr, and nothing anywhere else (issue 11).

Each test reads like a transcript: the command, where stdout and stderr go (a pseudo-terminal
or a pipe), the exit code, and what each stream shows.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli, new_wallet

MIB = 1024 * 1024
_CSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _big_file(path: Path, mib: int = 24) -> Path:
    path.write_bytes(os.urandom(MIB) * mib)
    return path


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return out
        if not chunk:
            return out
        out += chunk


def _on_terminal(cli: Cli, *args: str | Path) -> tuple[int, bytes]:
    """Run with stdout and stderr on one pseudo-terminal, as a person sees it."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "healthwallet", *map(str, args)], cli.env)
    screen = _drain(fd)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen


def _stderr_on_terminal(cli: Cli, *args: str | Path) -> tuple[int, bytes, bytes]:
    """Run with stderr on a pseudo-terminal and stdout in a pipe (`… > file` in a shell)."""
    controller, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthwallet", *map(str, args)],
        stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, env=cli.env,
    )
    os.close(follower)
    err = _drain(controller)
    out = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(timeout=120)
    os.close(controller)
    return code, out, err


def _before(screen: bytes, marker: bytes) -> bytes:
    """What the terminal received just before ``marker``, escape sequences removed."""
    return _CSI.sub(b"", screen[: screen.index(marker)])


def test_record_add_shows_a_bar_on_a_terminal_and_the_result_on_its_own_line(
    wallet: Cli, tmp_path: Path
) -> None:
    code, screen = _on_terminal(wallet, "record", "add", _big_file(tmp_path / "scan.bin"))
    assert code == 0, screen
    assert b"encrypting" in screen and b"MiB" in screen
    shown = _before(screen, b"added ")
    assert shown.endswith((b"\r", b"\n")), shown[-80:]  # never glued to the bar


def test_progress_goes_to_stderr_only(wallet: Cli, tmp_path: Path) -> None:
    code, out, err = _stderr_on_terminal(wallet, "record", "add", _big_file(tmp_path / "a.bin"))
    assert code == 0
    assert b"encrypting" in err
    assert out.decode().startswith("added ") and b"encrypting" not in out


@pytest.mark.parametrize("flag", ["--json", "--quiet"], ids=["json", "quiet"])
def test_no_bar_under_json_or_quiet_even_on_a_terminal(
    wallet: Cli, tmp_path: Path, flag: str
) -> None:
    code, out, err = _stderr_on_terminal(wallet, flag, "record", "add",
                                         _big_file(tmp_path / "a.bin"))
    assert code == 0
    assert err == b""
    if flag == "--json":
        assert json.loads(out)["records"][0]["size"] == 24 * MIB
    else:
        assert out == b""


def test_in_a_pipe_nothing_but_the_result_appears(wallet: Cli, tmp_path: Path) -> None:
    big = _big_file(tmp_path / "a.bin")
    result = wallet.ok("record", "add", big)
    assert result.err == ""
    assert re.fullmatch(r"added [0-9a-f]{16}  other  24\.0 MiB\n", result.out)
    record_id = result.out.split()[1]
    shown = wallet.ok("record", "show", record_id, "--out", tmp_path / "copy.bin")
    assert shown.err == "" and shown.out == f"wrote 24.0 MiB to {tmp_path / 'copy.bin'}\n"


def test_show_open_backup_and_restore_show_bars_on_a_terminal(
    wallet: Cli, tmp_path: Path
) -> None:
    record_id = wallet.ok("record", "add", _big_file(tmp_path / "scan.bin"), "--json").json()[
        "records"][0]["id"]
    code, screen = _on_terminal(wallet, "record", "show", record_id, "--out", tmp_path / "c.bin")
    assert code == 0 and b"decrypting" in screen
    assert _before(screen, b"wrote ").endswith((b"\r", b"\n"))

    doctor = new_wallet(tmp_path, "doctor")
    doctor_did = doctor.ok("id", "--json").json()["did"]
    grant = tmp_path / "scan.hwgrant"
    code, screen = _on_terminal(wallet, "grant", doctor_did, "--record", record_id,
                                "--expires", "1d", "--out", grant)
    assert code == 0 and b"sealing" in screen
    status = next((wallet.home / "status").glob("*.json"))
    code, screen = _on_terminal(doctor, "open", grant, "--out", tmp_path / "opened",
                                "--status-list", status)
    assert code == 0 and b"opening" in screen
    assert _before(screen, b"Opened grant").endswith((b"\r", b"\n"))

    backup = tmp_path / "w.hwbackup"
    code, screen = _on_terminal(wallet, "backup", "--out", backup)
    assert code == 0 and b"backing up" in screen
    assert _before(screen, b"Wrote ").endswith((b"\r", b"\n"))
    phrase = tmp_path / "phrase.txt"
    phrase.write_text(wallet.ok("key", "export", "--phrase").out)
    restored = Cli(tmp_path / "restored", dict(wallet.env, HEALTHWALLET_HOME=str(
        tmp_path / "restored")))
    code, screen = _on_terminal(restored, "restore", backup, "--phrase-file", phrase,
                                "--keystore", "file")
    assert code == 0, screen
    assert b"restoring" in screen
    assert _before(screen, b"Restored ").endswith((b"\r", b"\n"))


def test_anchor_shows_activity_while_the_ledger_works(wallet: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4 anchored\n")
    wallet.ok("record", "add", tmp_path / "a.pdf")
    code, screen = _on_terminal(wallet, "anchor")
    assert code == 0, screen
    assert b"anchoring" in screen
    assert _before(screen, b"Anchored 1 record").endswith((b"\r", b"\n"))
    assert wallet.ok("anchor", "--json").err == ""  # nothing to anchor, and no bar in a pipe
