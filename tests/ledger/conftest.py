"""Fixtures for the ledger tests: identities, wallet homes, and a real Anvil node."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from healthwallet.keys import Identity
from healthwallet.ledger.base import LedgerContext

REPO = Path(__file__).resolve().parents[2]
ANVIL_CANDIDATES = [
    REPO / "tests/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
    REPO / "tests/node/node_modules/.bin/anvil",
]
# Anvil's well-known dev account #0 (public test key from the Foundry docs; funded on start).
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
CHAIN_ID = 31337
FIXED_NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def anvil_binary() -> Path:
    """The anvil binary; fails under CI=true and skips elsewhere when it is missing."""
    for candidate in ANVIL_CANDIDATES:
        if candidate.exists() and os.access(candidate, os.X_OK):
            return candidate
    reason = "anvil not installed: run `npm ci` in tests/node"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(url: str, method: str, *params: Any) -> Any:
    """One JSON-RPC call; raises on an error answer."""
    body = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=5
    ).json()
    if body.get("error"):
        raise RuntimeError(body["error"])
    return body["result"]


@dataclass
class Anvil:
    """A running Anvil node."""

    url: str
    port: int
    process: subprocess.Popen[bytes]

    def call(self, method: str, *params: Any) -> Any:
        return rpc(self.url, method, *params)

    def mine(self, blocks: int) -> None:
        self.call("anvil_mine", hex(blocks))

    def nonce(self, address: str = DEV_ADDRESS) -> int:
        return int(self.call("eth_getTransactionCount", address, "latest"), 16)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_anvil(port: int | None = None) -> Anvil:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC.

    Without a given port, a free one is picked; should something take it before anvil binds
    it (anvil then exits at once), up to two more ports are tried."""
    if port is not None:
        return _start_anvil_on(port)
    for attempt in range(3):
        try:
            return _start_anvil_on(free_port())
        except AnvilExitedError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class AnvilExitedError(RuntimeError):
    """anvil ended before it answered (for instance: its port was taken)."""


def _start_anvil_on(port: int) -> Anvil:
    binary = anvil_binary()
    process = subprocess.Popen(
        [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(CHAIN_ID),
            "--accounts",
            "2",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = Anvil(f"http://127.0.0.1:{port}", port, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AnvilExitedError(f"anvil exited with {process.returncode}")
        try:
            if int(node.call("eth_chainId"), 16) == CHAIN_ID:
                return node
        except (httpx.TransportError, RuntimeError):
            time.sleep(0.05)
    node.stop()
    raise RuntimeError("anvil did not become ready")


@pytest.fixture(scope="session")
def anvil_session() -> Iterator[Anvil]:
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def anvil(anvil_session: Anvil) -> Iterator[Anvil]:
    """A fresh chain state per test (evm_snapshot / evm_revert on one node)."""
    snapshot = anvil_session.call("evm_snapshot")
    try:
        yield anvil_session
    finally:
        anvil_session.call("evm_revert", snapshot)


@pytest.fixture
def identity() -> Identity:
    return Identity(bytes(range(32)))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "wallet"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def local_ctx(home: Path, identity: Identity) -> LedgerContext:
    return LedgerContext(home=home, identity=identity, clock=lambda: FIXED_NOW)


def eth_ctx(
    home: Path,
    url: str,
    *,
    confirmations: int = 1,
    transport: httpx.BaseTransport | None = None,
    key: str | None = DEV_KEY,
    **settings: Any,
) -> LedgerContext:
    """Context for the ethereum backend; the key comes through the environment mapping."""
    environ = {"HEALTHWALLET_ETH_KEY": key} if key else {}
    return LedgerContext(
        home=home,
        clock=lambda: FIXED_NOW,
        transport=transport,
        settings={"rpc_url": url, "chain_id": CHAIN_ID, "confirmations": confirmations, **settings},
        environ=environ,
    )
