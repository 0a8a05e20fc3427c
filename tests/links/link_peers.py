"""Fixtures for link tests: the real `relay serve` over TLS, and wallets that trust its CA."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli, base_env, fhir_bundle
from shl_server import ServedRelay, relay_serve


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[ServedRelay, Path]]:
    """`healthwallet relay serve` on https://127.0.0.1:PORT/ and the CA that signs its
    certificate."""
    folder = tmp_path / "relay"
    folder.mkdir()
    with relay_serve(folder, base_env(tmp_path)) as served:
        yield served, served.ca


def trusting(tmp_path: Path, name: str, ca: Path) -> Cli:
    """A new wallet that trusts the test CA and may reach 127.0.0.1."""
    env = base_env(tmp_path)
    env.update(HEALTHWALLET_HOME=str(tmp_path / name),
               HEALTHWALLET_PASSPHRASE=f"{name} passphrase", SSL_CERT_FILE=str(ca))
    cli = Cli(tmp_path / name, env)
    cli.ok("init", "--keystore", "file")
    cli.ok("config", "set", "allow-local-urls", "true")
    return cli


@pytest.fixture
def people(tmp_path: Path, relay: tuple[ServedRelay, Path]) -> dict[str, Cli]:
    """A patient with two records (labs, a PDF letter) and a doctor, both trusting the CA."""
    _, ca = relay
    patient, doctor = trusting(tmp_path, "patient", ca), trusting(tmp_path, "doctor", ca)
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle("Okonkwo-Lindqvist", "Adaeze")))
    patient.ok("record", "add", labs, "--tag", "knee")
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4\n% a discharge letter\n%%EOF\n")
    patient.ok("record", "add", letter, "--tag", "knee")
    return {"patient": patient, "doctor": doctor}
