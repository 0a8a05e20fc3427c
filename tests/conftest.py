"""Shared fixtures: a CLI runner that runs the real `healthwallet` in a subprocess."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import repo_guard

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Cheap Argon2id for the suite; honoured only while PYTEST_CURRENT_TEST is set
# (see healthwallet/keystore.py). One test still runs the real cost.
os.environ["HEALTHWALLET_TEST_INSECURE_KDF"] = "1"

repo_guard.install()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop when collecting the tests read a path beside the checkout (module-level vectors)."""
    if repo_guard.outside_reads:
        listing = "; ".join(sorted(set(repo_guard.outside_reads)))
        raise pytest.UsageError(f"tests read outside the repository while collecting: {listing}")


@pytest.fixture(autouse=True)
def _reads_stay_in_the_repository() -> Iterator[None]:
    """Fail the test that read a path beside the checkout (see tests/repo_guard.py); a fixture
    rather than a session hook, so it also holds when tests run in parallel workers."""
    before = len(repo_guard.outside_reads)
    yield
    new = repo_guard.outside_reads[before:]
    if new:
        del repo_guard.outside_reads[before:]
        pytest.fail("the test read outside the repository: " + "; ".join(sorted(set(new))))


def require(condition: bool, what: str) -> None:
    """Skip locally when an integration part is missing; fail in CI (CI=true)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"integration part missing in CI: {what}")
    pytest.skip(f"integration part missing: {what}")


def require_tool(name: str) -> str:
    """Path of an executable integration part (see require)."""
    path = shutil.which(name)
    require(path is not None, name)
    assert path is not None
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs `python -m healthwallet` against one wallet home."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env

    def __call__(self, *args: str | Path, input: bytes | None = None,
                 env: dict[str, str] | None = None, timeout: float = 120,
                 **kwargs: Any) -> Result:
        full_env = dict(self.env)
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "healthwallet", *map(str, args)],
            input=input, capture_output=True, env=full_env, timeout=timeout, **kwargs,
        )
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))

    def ok(self, *args: str | Path, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.code == 0, (args, result)
        return result


@contextlib.contextmanager
def serving(root: Path, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``root``; yields its base URL. With ``tls``
    (certificate file, key file) it speaks HTTPS."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def base_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "userhome").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEALTHWALLET_", "DBUS_SESSION"))}
    env.update({
        "HOME": str(tmp_path / "userhome"),
        "XDG_DATA_HOME": str(tmp_path / "userhome" / ".local" / "share"),
        "HEALTHWALLET_TEST_INSECURE_KDF": "1",
        "PYTEST_CURRENT_TEST": os.environ.get("PYTEST_CURRENT_TEST", "conftest"),
        "COLUMNS": "200",
        "PYTHONPATH": str(ROOT),
    })
    return env


def new_wallet(root: Path, name: str) -> Cli:
    """A runner for a new wallet ``root/name`` (file keystore, passphrase in the env)."""
    env = base_env(root)
    env["HEALTHWALLET_HOME"] = str(root / name)
    env["HEALTHWALLET_PASSPHRASE"] = f"{name} passphrase"
    cli = Cli(root / name, env)
    cli.ok("init", "--keystore", "file")
    return cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A runner with a fresh (not yet created) wallet home and a passphrase in the env."""
    home = tmp_path / "wallet"
    env = base_env(tmp_path)
    env["HEALTHWALLET_HOME"] = str(home)
    env["HEALTHWALLET_PASSPHRASE"] = "correct horse battery staple"
    return Cli(home, env)


@pytest.fixture
def wallet(cli: Cli) -> Cli:
    """A runner whose wallet exists (file keystore)."""
    cli.ok("init", "--keystore", "file")
    return cli


def fhir_bundle(family: str = "Quixotica", given: str = "Marisol") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1",
                          "name": [{"family": family, "given": [given]}],
                          "birthDate": "1961-04-12"}},
            {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                          "code": {"text": "hemoglobin"},
                          "valueQuantity": {"value": 13.2, "unit": "g/dL"}}},
            {"resource": {"resourceType": "Observation", "id": "o2", "status": "final",
                          "code": {"text": "glucose"}}},
        ],
    }
