"""`healthwallet relay serve` as an operator runs it: start, serve over TLS, stop on a signal.

Also two relays sharing one real PostgreSQL store behind them.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import Cli, base_env
from relay_fixtures import (  # noqa: F401 (fixtures)
    free_port,
    jwe_file,
    postgres_dsn_fixture,
    postgres_server_fixture,
    signed_request,
)
from tlsca import certificates

from healthwallet import keys
from healthwallet.relay import protocol

ALICE = keys.Identity(b"\x01" * 32)
MALLORY = keys.Identity(b"\x02" * 32)


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    client: httpx.Client

    def signed(self, identity: keys.Identity, method: str, path: str, body: object = None,
               nonce: str | None = None) -> httpx.Response:
        return signed_request(self.client, self.url, identity, method, path, body,
                              int(time.time()), nonce)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "tls"
    folder.mkdir()
    return certificates(folder)


@contextmanager
def serving(tmp_path: Path, tls: tuple[Path, Path, Path], *flags: str) -> Iterator[Served]:
    """`relay serve` in a subprocess on a free port; stopped with SIGTERM at the end."""
    ca, cert, key = tls
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthwallet", "relay", "serve", "--cert", str(cert),
         "--key", str(key), "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(tmp_path), cwd=tmp_path,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("relay serving https://127.0.0.1:"), (line, proc.stderr.read())
    url = line.split()[2]
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=30)
    try:
        yield Served(url, proc, client)
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_relay_serve_starts_serves_and_stops_cleanly_on_a_signal(
    tmp_path: Path, tls: tuple[Path, Path, Path], stop: signal.Signals
) -> None:
    with serving(tmp_path, tls, "--allow-patient", ALICE.did) as relay:
        made = relay.signed(ALICE, "POST", protocol.API_LINKS, {"files": [jwe_file()]})
        assert made.status_code == 201
        assert made.json()["url"].startswith(relay.url + "m/")
        answer = relay.client.post(made.json()["url"], json={"recipient": "Dr. A"})
        assert answer.status_code == 200 and answer.json()["files"][0]["embedded"]
        assert relay.signed(MALLORY, "POST", protocol.API_LINKS,
                            {"files": [jwe_file()]}).status_code == 403
        relay.proc.send_signal(stop)
        assert relay.proc.wait(timeout=30) == 0
        assert relay.proc.stderr is not None
        err = relay.proc.stderr.read().decode()
        assert "relay stopped" in err and "Traceback" not in err
    assert (tmp_path / "relay.db").exists()


def test_relay_serve_json_names_the_bound_port(tmp_path: Path,
                                               tls: tuple[Path, Path, Path]) -> None:
    _ca, cert, key = tls
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthwallet", "relay", "serve", "--cert", str(cert), "--key",
         str(key), "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(tmp_path), cwd=tmp_path)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    assert ready["url"] == f"https://127.0.0.1:{ready['port']}/" and ready["host"] == "127.0.0.1"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_relay_serve_refuses_plain_http_clients(tmp_path: Path,
                                                tls: tuple[Path, Path, Path]) -> None:
    with serving(tmp_path, tls, "--open-registration") as relay:
        with pytest.raises(httpx.HTTPError):
            httpx.get(relay.url.replace("https://", "http://") + "m/x", timeout=5)


def test_relay_serve_bad_settings_exit_with_usage_codes(
    tmp_path: Path, cli: Cli, tls: tuple[Path, Path, Path]
) -> None:
    _ca, cert, key = tls
    serve = ("relay", "serve", "--port", "0", "--db", str(tmp_path / "r.db"))
    missing = cli(*serve, "--cert", tmp_path / "nope.pem", "--key", key)
    assert missing.code == 2 and "TLS certificate" in missing.err
    not_did = cli(*serve, "--cert", cert, "--key", key, "--allow-patient", "did:web:x")
    assert not_did.code == 2 and "did:key" in not_did.err
    both = cli(*serve, "--cert", cert, "--key", key, "--postgres", "host=x")
    assert both.code == 2 and "not both" in both.err
    plain = cli(*serve, "--cert", cert, "--key", key, "--public-url", "http://relay.example/")
    assert plain.code == 2 and "https" in plain.err
    with serving(tmp_path, tls, "--open-registration") as relay:
        port = relay.url.rsplit(":", 1)[1].strip("/")
        busy = cli("relay", "serve", "--cert", cert, "--key", key, "--port", port)
        assert busy.code == 2 and "cannot listen" in busy.err
    unreachable = cli("relay", "serve", "--cert", cert, "--key", key, "--port", "0",
                      "--postgres", f"host=127.0.0.1 port={free_port()} connect_timeout=2")
    assert unreachable.code == 5 and "PostgreSQL" in unreachable.err
    for result in (missing, not_did, both, plain, busy, unreachable):
        assert "Traceback" not in result.err


def test_two_relays_on_one_postgres_share_links_budgets_and_nonces(
    tmp_path: Path, tls: tuple[Path, Path, Path], postgres_dsn: str
) -> None:
    flags = ("--postgres", postgres_dsn, "--allow-patient", ALICE.did)
    with serving(tmp_path, tls, *flags) as one, serving(tmp_path, tls, *flags) as two:
        made = one.signed(ALICE, "POST", protocol.API_LINKS,
                          {"flag": "P", "passcode": "pw", "passcodeAttempts": 2,
                           "files": [jwe_file()]}).json()
        path = made["url"].removeprefix(one.url)
        on_two = two.url + path
        assert two.client.post(on_two, json={"recipient": "B", "passcode": "x"}).json() == {
            "remainingAttempts": 1}
        assert one.client.post(made["url"], json={"recipient": "A", "passcode": "pw"}
                               ).status_code == 200
        nonce = keys.b64url(b"s" * 16)
        assert one.signed(ALICE, "GET", protocol.API_LINKS, nonce=nonce).status_code == 200
        assert two.signed(ALICE, "GET", protocol.API_LINKS, nonce=nonce).status_code == 401
        assert two.signed(ALICE, "DELETE", f"{protocol.API_LINKS}/{made['id']}").status_code == 200
        assert one.client.post(made["url"], json={"recipient": "A", "passcode": "pw"}
                               ).status_code == 404


@pytest.mark.parametrize("rate", ["nan", "inf"])
def test_relay_serve_refuses_a_rate_that_is_not_a_finite_number(
    tmp_path: Path, cli: Cli, tls: tuple[Path, Path, Path], rate: str
) -> None:
    # NaN or infinity would let every request through (the bucket never runs dry). The
    # unreachable store makes an accepted rate end in exit 5 rather than serve.
    _ca, cert, key = tls
    result = cli("relay", "serve", "--cert", cert, "--key", key, "--port", "0", "--rate", rate,
                 "--postgres", f"host=127.0.0.1 port={free_port()} connect_timeout=2")
    assert result.code == 2 and "--rate must be" in result.err
