"""Helpers for the unlock-agent tests: a short runtime folder and a watch on agent processes."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Cli, base_env


def agent_pids(marker: str) -> list[int]:
    """Pids of agent processes whose command line names ``marker`` (a folder of this test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"healthwallet.agent" in cmdline and marker.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_for(condition: object, seconds: float = 15.0) -> bool:
    """Poll ``condition()`` until it holds or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@contextmanager
def runtime_dir() -> Iterator[Path]:
    """A short private folder for XDG_RUNTIME_DIR (socket paths must stay under ~100 bytes).

    On the way out, no agent started under it may still run: one that does is ended (it is
    ours, found by its own socket path) and the test fails.
    """
    path = Path(tempfile.mkdtemp(prefix="hw-"))
    try:
        yield path
    finally:
        wait_for(lambda: not agent_pids(str(path)), seconds=5)  # a locked agent is leaving
        leftover = agent_pids(str(path))
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        assert not leftover, f"agent processes left behind: {leftover}"


PASSPHRASE = "agent test passphrase"


class AgentWallet:
    """A file-keystore wallet, a runtime folder for its agent, and two ways to run the CLI."""

    def __init__(self, home: Path, runtime: Path, env: dict[str, str]) -> None:
        self.home = home
        self.runtime = runtime
        self.with_passphrase = Cli(home, dict(env, HEALTHWALLET_PASSPHRASE=PASSPHRASE))
        self.bare = Cli(home, env)  # no passphrase anywhere, no terminal: only the agent helps


@pytest.fixture
def agent_wallet(tmp_path: Path) -> Iterator[AgentWallet]:
    """An initialised wallet whose agent would live in a fresh runtime folder."""
    with runtime_dir() as runtime:
        env = base_env(tmp_path)
        env["HEALTHWALLET_HOME"] = str(tmp_path / "wallet")
        env["XDG_RUNTIME_DIR"] = str(runtime)
        wallet = AgentWallet(tmp_path / "wallet", runtime, env)
        wallet.with_passphrase.ok("init", "--keystore", "file")
        try:
            yield wallet
        finally:
            wallet.bare("lock")
