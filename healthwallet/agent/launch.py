"""Starting an agent process for a wallet (only `healthwallet unlock` does this)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from .client import AgentClient, AgentError, AgentNotRunningError
from .wire import READY

START_TIMEOUT_SECONDS = 15.0
_SCRUBBED_ENV = ("HEALTHWALLET_PASSPHRASE",)  # the agent never needs, and must not keep, these


def start_agent(path: Path) -> AgentClient:
    """Start an agent process on ``path`` and wait until it listens; AgentError if it cannot.

    The agent gets a new session (no terminal), ``/`` as its directory, and an environment
    without the passphrase; it reports ``ready`` on a pipe that is then closed.
    """
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthwallet.agent", "--socket", os.fspath(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
        env=env,
    )
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with proc.stdout:
        while not line.endswith(b"\n") and len(line) < 512:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([proc.stdout], [], [], remaining)[0]:
                break
            chunk = os.read(proc.stdout.fileno(), 512)
            if not chunk:
                break
            line += chunk
    if line == READY:
        return AgentClient(path)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reason = line.decode("ascii", "replace").strip().removeprefix("refused: ")
    raise AgentError(f"the unlock agent did not start ({reason or 'no answer'})")


def connect_or_start(path: Path) -> AgentClient:
    """The agent at ``path`` if one answers there, else a new one started on it.

    Only a missing or stale socket starts a new agent; anything refused there (a planted
    file, a socket or process of another user) is an AgentError, never replaced.
    """
    client = AgentClient(path)
    try:
        client.status()
        return client
    except AgentNotRunningError:
        pass
    try:
        return start_agent(path)
    except AgentError:
        client.status()  # another `unlock` may have started one first: use it if it answers
        return client
