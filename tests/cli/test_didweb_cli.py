"""Grants to a did:web doctor, resolved from a real HTTPS server on 127.0.0.1 (as `localhost`).

The server's certificate comes from a test CA made here; `SSL_CERT_FILE` tells the fetcher to
trust it, as an operator would for a private CA. Without it the same server is refused. The
wallets opt in to loopback addresses with `config set allow-local-urls true`.
"""

from __future__ import annotations

import functools
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Cli, base_env, fhir_bundle
from local_status import typing_status_lists
from tlsca import certificates


@dataclass
class Site:
    root: Path
    port: int
    ca_file: Path

    def did(self, *path: str) -> str:
        return ":".join([f"did:web:localhost%3A{self.port}", *path])

    def publish(self, did_document: str, *path: str) -> None:
        folder = self.root.joinpath(*path) if path else self.root / ".well-known"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "did.json").write_text(did_document)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_https(root: Path, folder: Path) -> tuple[http.server.ThreadingHTTPServer, Path]:
    """A real HTTPS server on 127.0.0.1 serving ``root``, already running, and its CA file
    (certificates are written to ``folder``)."""
    ca_file, cert_file, key_file = certificates(folder)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, ca_file


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A real HTTPS server on 127.0.0.1 serving a directory."""
    root = tmp_path / "www"
    root.mkdir()
    server, ca_file = serve_https(root, tmp_path)
    try:
        yield Site(root, server.server_address[1], ca_file)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def people(tmp_path: Path, site: Site) -> dict[str, Cli]:
    out = {}
    for name in ("patient", "doctor", "stranger"):
        env = base_env(tmp_path)
        env.update(
            HEALTHWALLET_HOME=str(tmp_path / name),
            HEALTHWALLET_PASSPHRASE=f"{name} passphrase",
            SSL_CERT_FILE=str(site.ca_file),
        )
        out[name] = typing_status_lists(Cli(tmp_path / name, env))
        out[name].ok("init", "--keystore", "file")
        # The test server is on loopback: each wallet opts in (the default refuses it).
        out[name].ok("config", "set", "allow-local-urls", "true")
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle("Okonkwo-Lindqvist", "Adaeze")))
    out["patient"].ok("record", "add", labs, "--tag", "cardio")
    return out


def test_grant_to_a_did_web_doctor_verifies_and_opens(
    people: dict[str, Cli], site: Site, tmp_path: Path
) -> None:
    patient, doctor, stranger = people["patient"], people["doctor"], people["stranger"]
    did = site.did("staff", "lee")
    doctor.ok("config", "set", "did-web", did)
    document = doctor.ok("id", "--did-document").out
    assert json.loads(document)["id"] == did
    site.publish(document, "staff", "lee")

    grant_file = tmp_path / "g.hwgrant"
    summary = patient.ok("grant", did, "--tag", "cardio", "--expires", "2d",
                         "--out", grant_file, "--json").json()
    assert summary["recipient"] == did and summary["recipient_key"] == did + "#key-2"

    verdict = doctor.ok("verify", grant_file, "--json").json()
    assert verdict["valid"] is True and verdict["recipient"] == did
    recipient = next(c for c in verdict["checks"] if c["name"] == "recipient")
    assert recipient == {"name": "recipient", "ok": True, "detail": f"addressed to {did}"}
    opened = doctor.ok("open", grant_file, "--out", tmp_path / "out", "--json").json()
    assert [r["verified"] for r in opened["records"]] == [True]
    assert (tmp_path / "out" / "labs.json").read_text() == (tmp_path / "labs.json").read_text()

    # Someone else, even claiming the same did:web, holds the wrong key.
    assert stranger("verify", grant_file).code == 1  # not addressed to the stranger's DIDs
    stranger.ok("config", "set", "did-web", did)
    refused = stranger("open", grant_file, "--out", tmp_path / "s")
    assert refused.code == 1
    assert refused.err.startswith("error: the grant's content key is not sealed to this wallet's key")
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
    # And without the did-web setting the doctor's wallet does not answer to it.
    doctor.ok("config", "set", "did-web", "")
    assert doctor("open", grant_file, "--out", tmp_path / "o2").code == 1


def test_the_well_known_location_serves_a_bare_domain(
    people: dict[str, Cli], site: Site, tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    did = site.did()
    doctor.ok("config", "set", "did-web", did)
    site.publish(doctor.ok("id", "--did-document").out)
    grant_file = tmp_path / "g.hwgrant"
    patient.ok("grant", did, "--type", "fhir", "--expires", "1d", "--out", grant_file)
    assert doctor.ok("open", grant_file, "--out", tmp_path / "out", "--json").json()["records"]


def test_did_web_failures_are_one_line_with_the_right_exit_code(
    people: dict[str, Cli], site: Site, tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    out = tmp_path / "g.hwgrant"

    def grant(did: str, **kwargs: object) -> tuple[int, str]:
        result = patient("grant", did, "--type", "fhir", "--expires", "1d", "--out", out,
                         **kwargs)  # type: ignore[arg-type]
        assert "Traceback" not in result.err and len(result.err.splitlines()) <= 2, result.err
        assert not out.exists()
        return result.code, result.err

    code, err = grant(site.did("nobody"))  # no document there: HTTP 404
    assert code == 5 and "answered HTTP 404" in err
    code, err = grant("did:web:127.0.0.1")
    assert code == 2 and "not an IP address" in err

    doctor.ok("config", "set", "did-web", site.did("doc"))
    real = json.loads(doctor.ok("id", "--did-document").out)
    site.publish(json.dumps(dict(real, id=site.did("somebody-else"))), "doc")
    code, err = grant(site.did("doc"))
    assert code == 2 and "is not about" in err
    site.publish(json.dumps(dict(real, keyAgreement=[])), "doc")
    code, err = grant(site.did("doc"))
    assert code == 2 and "no usable X25519 keyAgreement key" in err
    site.publish("<html>not json</html>", "doc")
    code, err = grant(site.did("doc"))
    assert code == 2 and "is not JSON" in err
    site.publish(json.dumps(real) + " " * 200_000, "doc")
    code, err = grant(site.did("doc"))
    assert code == 2 and "larger than 100 KiB" in err

    # The same server, but the patient's machine does not trust its CA: refused, exit 5.
    site.publish(json.dumps(real), "doc")
    code, err = grant(site.did("doc"), env={"SSL_CERT_FILE": ""})
    assert code == 5 and "cannot fetch DID document" in err
    # and trusted, it works
    assert patient("grant", site.did("doc"), "--type", "fhir", "--expires", "1d",
                   "--out", out).code == 0


def test_did_web_setting_is_checked(people: dict[str, Cli]) -> None:
    doctor = people["doctor"]
    bad = doctor("config", "set", "did-web", "did:web:127.0.0.1")
    assert bad.code == 2 and bad.err.startswith("error: not a did:web")
    missing = doctor("id", "--did-document")
    assert missing.code == 2 and "config set did-web" in missing.err


def test_did_web_naming_a_loopback_host_is_refused_by_default(
    people: dict[str, Cli], site: Site, tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    did = site.did("staff", "lee")
    doctor.ok("config", "set", "did-web", did)
    site.publish(doctor.ok("id", "--did-document").out, "staff", "lee")
    patient.ok("config", "set", "allow-local-urls", "false")
    out = tmp_path / "g.hwgrant"
    refused = patient("grant", did, "--type", "fhir", "--expires", "1d", "--out", out)
    # `localhost` resolves to 127.0.0.1: the resolved address is what is judged.
    assert refused.code == 2 and not out.exists()
    assert refused.err.startswith("error: DID document https://localhost:")
    assert "leads to a loopback address" in refused.err
    assert "hint: " in refused.err and "allow-local-urls true" in refused.err
