"""Colour on a terminal, plain under NO_COLOR, in a pipe and with --json (run on a real pty).

Only our own marks are coloured: ✓ and VALID green, ✗, INVALID and `error:` red, `hint:` dim.
A hostile escape sequence in data is still shown as text, coloured terminal or not.
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from small_grant import small_grant

from healthwallet.keys import Identity

SGR = re.compile(rb"\x1b\[[0-9;]*m")  # Select Graphic Rendition: colour and style codes
ANY_ESCAPE = re.compile(rb"\x1b")
GREEN, RED, DIM = rb"\x1b\[32m", rb"\x1b\[31m", rb"\x1b\[2m"


def on_terminal(env: dict[str, str], *argv: str | Path) -> tuple[int, bytes, bytes]:
    """Run `healthwallet ARGV` with stdout and stderr each on its own pseudo-terminal."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthwallet", *map(str, argv)],
        stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave, env=env,
    )
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, bytes] = {out_master: b"", err_master: b""}
    open_fds = set(chunks)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("the command did not finish on the terminal")
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the other side is closed
                data = b""
            if data:
                chunks[fd] += data
            else:
                open_fds.discard(fd)
                os.close(fd)
    code = proc.wait(timeout=60)
    # A pty turns "\n" into "\r\n"; compare lines as a pipe would give them.
    return code, chunks[out_master].replace(b"\r\n", b"\n"), chunks[err_master].replace(
        b"\r\n", b"\n"
    )


def in_a_pipe(env: dict[str, str], *argv: str | Path) -> tuple[int, bytes, bytes]:
    proc = subprocess.run([sys.executable, "-m", "healthwallet", *map(str, argv)],
                          capture_output=True, env=env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, str]:
    env, grant, listed = small_grant(tmp_path_factory.mktemp("colours"))
    env = {k: v for k, v in env.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return dict(env, TERM="xterm-256color"), grant, listed


def test_verdict_marks_are_green_on_a_terminal(setup) -> None:
    env, grant, listed = setup
    code, out, _err = on_terminal(env, "verify", grant, "--status-list", listed)
    assert code == 0
    assert re.search(GREEN + "✓ VALID".encode(), out), out
    assert re.search(rb"  " + GREEN + "✓".encode(), out), out  # each passed check
    assert b"grant  urn:uuid:" in out


def test_invalid_verdict_and_error_are_red_and_hint_dim_on_a_terminal(setup, tmp_path) -> None:
    env, grant, listed = setup
    someone_else = Identity(hashlib.sha256(b"someone else").digest()).did
    code, out, _err = on_terminal(env, "verify", grant, "--status-list", listed,
                                  "--recipient", someone_else)
    assert code == 1
    assert re.search(RED + "✗ INVALID".encode(), out), out
    assert re.search(RED + "✗".encode() + rb"\x1b\[0m recipient", out), out

    code, _out, err = on_terminal(env, "verify", tmp_path / "missing.hwgrant")
    assert code == 3
    assert re.match(RED + rb"error:\x1b\[0m the grant file does not exist\n", err), err
    assert re.search(rb"\n" + DIM + rb"hint:\x1b\[0m check the path\n", err), err


@pytest.mark.parametrize("how", ["no-color", "no-color-0", "pipe", "json", "term-dumb"])
def test_no_colour_under_no_color_in_a_pipe_with_json_and_on_a_dumb_terminal(setup, tmp_path, how: str) -> None:
    env, grant, listed = setup
    run = on_terminal
    extra: tuple[str, ...] = ()
    if how.startswith("no-color"):
        env = dict(env, NO_COLOR="0" if how == "no-color-0" else "1")  # any value counts
    elif how == "pipe":
        run = in_a_pipe
    elif how == "term-dumb":
        env = dict(env, TERM="dumb")
    else:
        extra = ("--json",)
    code, out, err = run(env, "verify", grant, "--status-list", listed, *extra)
    assert code == 0
    assert not ANY_ESCAPE.search(out) and not ANY_ESCAPE.search(err), (out, err)
    assert ("✓ VALID".encode() in out) or (b'"valid": true' in out)

    code, out, err = run(env, "verify", tmp_path / "missing.hwgrant", *extra)
    assert code == 3
    assert not ANY_ESCAPE.search(out) and not ANY_ESCAPE.search(err), (out, err)
    assert err.startswith(b"error: the grant file does not exist\nhint: ")


def test_hostile_escapes_stay_text_on_a_colour_terminal(setup) -> None:
    """Colour comes from our marks only: a name with ESC [2J is shown, never obeyed."""
    env, _grant, _listed = setup
    hostile = "\x1b[2J\x1b[32mVALID"
    code, _out, err = on_terminal(env, hostile)
    assert code == 2
    assert rb"\x1b[2J\x1b[32mVALID" in err  # written as visible backslash escapes
    assert SGR.findall(err) and set(SGR.findall(err)) <= {b"\x1b[31m", b"\x1b[2m", b"\x1b[0m"}
    assert b"\x1b[2J" not in err
