"""The grant relay end to end: `grant --via`, `open URL`, and the relay's refusals over TLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle, new_wallet, serving
from relay_fixtures import (  # noqa: F401 (fixtures)
    Relay,
    postgres_dsn_fixture,
    postgres_server_fixture,
    running_relay,
    store_fixture,
)

from healthwallet import grantvia, keys
from healthwallet.errors import NotFoundError
from healthwallet.relay import protocol
from healthwallet.relay.grantrelay import STATUS_CACHE_SECONDS
from healthwallet.relay.store import SqlStore
from healthwallet.unlock import open_wallet


@pytest.fixture(name="grant_relay")
def grant_relay_fixture(store: SqlStore, tmp_path: Path) -> Iterator[Relay]:
    """A relay over each backend that may fetch status lists from 127.0.0.1."""
    (tmp_path / "tls").mkdir()
    with running_relay(store, tmp_path / "tls", allow_local_urls=True,
                       limits={"requests_per_second": 1000, "burst": 1000}) as relay:
        yield relay


class People:
    """A patient with a hosted status list, a doctor and a stranger, all trusting the relay."""

    def __init__(self, root: Path, relay: Relay, status_base: str) -> None:
        self.root = root
        self.relay = relay
        self.patient, self.doctor, self.stranger = (
            new_wallet(root, name) for name in ("patient", "doctor", "stranger")
        )
        for person in (self.patient, self.doctor, self.stranger):
            person.env["SSL_CERT_FILE"] = str(relay.ca_file)
            person.ok("config", "set", "allow-local-urls", "true")
        self.patient.ok("config", "set", "status-url", status_base + "/status/")
        labs = root / "labs.json"
        labs.write_text(json.dumps(fhir_bundle("Relayed", "Patient")))
        self.patient.ok("record", "add", labs, "--tag", "labs")

    def did(self, person: Cli) -> str:
        return person.ok("id").out.strip()

    def identity(self, person: Cli) -> keys.Identity:
        return open_wallet(person.home, lambda _: person.env["HEALTHWALLET_PASSPHRASE"]).identity

    def grant(self, to: Cli, expires: str = "1d", fmt: str = "ldp") -> dict[str, str]:
        out = self.root / f"grant-{len(list(self.root.glob('grant-*')))}.hwgrant"
        return dict(self.patient.ok("grant", self.did(to), "--tag", "labs", "--expires", expires,
                                    "--format", fmt, "--out", out, "--via", self.relay.url,
                                    "--json").json())

    def publish(self) -> None:
        self.patient.ok("status", "publish", "--out", self.root / "site" / "status")


@pytest.fixture(name="people")
def people_fixture(tmp_path: Path, grant_relay: Relay,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[People]:
    """The people, with the patient's status lists hosted over HTTPS on 127.0.0.1."""
    monkeypatch.setenv("HEALTHWALLET_TEST_INSECURE_KDF", "1")
    monkeypatch.setenv("SSL_CERT_FILE", str(grant_relay.ca_file))  # the relay's status fetches
    (tmp_path / "site").mkdir()
    tls = (tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")  # the relay's: one CA
    with serving(tmp_path / "site", tls) as base:
        people = People(tmp_path, grant_relay, base)
        yield people


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_relayed_grant_is_opened_by_its_recipient(people: People, tmp_path: Path,
                                                  fmt: str) -> None:
    issued = people.grant(people.doctor, fmt=fmt)
    people.publish()
    url = issued["relay_url"]
    assert url.startswith(people.relay.url + "g/") and issued["file"]
    opened = people.doctor.ok("open", url, "--out", tmp_path / "from-patient", "--json").json()
    assert opened["grant_id"] == issued["grant_id"] and len(opened["records"]) == 1
    assert "Relayed" in (tmp_path / "from-patient" / Path(opened["records"][0]["path"]).name
                         ).read_text()
    assert not list(people.doctor.home.glob(".relayed-*"))  # the fetched copy is gone


def test_relayed_grant_is_refused_to_another_did(people: People, tmp_path: Path) -> None:
    url = people.grant(people.doctor)["relay_url"]
    people.publish()
    refused = people.stranger("open", url, "--out", tmp_path / "o")
    assert refused.code == NotFoundError.exit_code
    assert refused.err.startswith("error: the relay does not give this grant to you")


def test_relayed_grant_is_refused_after_expiry(people: People, tmp_path: Path) -> None:
    url = people.grant(people.doctor, expires="2h")["relay_url"]
    people.publish()
    doctor = people.identity(people.doctor)
    assert grantvia.fetch(people.relay.client, doctor, url, int(people.relay.clock()))
    people.relay.clock.offset += 2 * 3600 + 1
    with pytest.raises(NotFoundError):
        grantvia.fetch(people.relay.client, doctor, url, int(people.relay.clock()))
    assert people.relay.client.get(url + "/challenge").status_code == 404


def test_relayed_grant_is_refused_after_revoke_and_status_publish(people: People,
                                                                   tmp_path: Path) -> None:
    issued = people.grant(people.doctor)
    people.publish()
    url = issued["relay_url"]
    doctor = people.identity(people.doctor)
    assert grantvia.fetch(people.relay.client, doctor, url, int(people.relay.clock()))
    people.patient.ok("revoke", issued["grant_id"])
    people.publish()
    people.relay.clock.offset += STATUS_CACHE_SECONDS + 1  # the relay's cached list ages out
    with pytest.raises(NotFoundError):
        grantvia.fetch(people.relay.client, doctor, url, int(people.relay.clock()))
    refused = people.doctor("open", url, "--out", tmp_path / "o")
    assert refused.code == NotFoundError.exit_code


def test_unreachable_status_list_fails_closed(people: People) -> None:
    url = people.grant(people.doctor)["relay_url"]  # never published: the list is a 404
    with pytest.raises(NotFoundError):
        grantvia.fetch(people.relay.client, people.identity(people.doctor), url,
                       int(people.relay.clock()))


def test_replayed_or_stale_challenge_is_refused(people: People) -> None:
    url = people.grant(people.doctor)["relay_url"]
    people.publish()
    doctor = people.identity(people.doctor)
    relay, client = people.relay, people.relay.client
    target = "/" + url.removeprefix(relay.url)

    def answer(nonce: str) -> int:
        body = json.dumps({"nonce": nonce}).encode()
        header = protocol.sign_request(doctor, "POST", target, body, int(relay.clock()))
        return client.post(url, content=body, headers={"Authorization": header}).status_code

    nonce = client.get(url + "/challenge").json()["nonce"]
    assert answer(nonce) == 200
    assert answer(nonce) == 404  # single use
    assert answer("A" * 43) == 404  # never issued
    stale = client.get(url + "/challenge").json()
    relay.clock.offset += stale["expires"] - int(relay.clock()) + 1
    assert answer(stale["nonce"]) == 404
    bad = client.post(url, content=b"{}", headers={"Authorization": "HW-Sig nonsense"})
    assert bad.status_code == 400


def test_patient_withdraws_a_relayed_grant(people: People) -> None:
    url = people.grant(people.doctor)["relay_url"]
    people.publish()
    grant_id = grantvia.parse_grant_url(url).grant_id
    doctor, patient = people.identity(people.doctor), people.identity(people.patient)
    with pytest.raises(NotFoundError):  # only the patient who uploaded it may delete it
        grantvia.withdraw(people.relay.client, doctor, people.relay.url, grant_id,
                          int(people.relay.clock()))
    grantvia.withdraw(people.relay.client, patient, people.relay.url, grant_id,
                      int(people.relay.clock()))
    with pytest.raises(NotFoundError):
        grantvia.fetch(people.relay.client, doctor, url, int(people.relay.clock()))


def test_relay_refuses_a_grant_that_does_not_verify(people: People, tmp_path: Path) -> None:
    issued = people.grant(people.doctor)
    data = bytearray(Path(issued["file"]).read_bytes())
    at = data.index(b'"proofValue"') if b'"proofValue"' in data else data.index(b'"jws"')
    data[at + 20] ^= 1
    patient = people.identity(people.patient)
    answer = people.relay.client.post(
        people.relay.url + protocol.API_GRANTS, content=bytes(data),
        headers={"Authorization": protocol.sign_request(
            patient, "POST", "/" + protocol.API_GRANTS, bytes(data), int(people.relay.clock()))})
    assert answer.status_code == 400
    stranger = people.identity(people.stranger)  # a valid grant, but not the uploader's
    raw = Path(issued["file"]).read_bytes()
    answer = people.relay.client.post(
        people.relay.url + protocol.API_GRANTS, content=raw,
        headers={"Authorization": protocol.sign_request(
            stranger, "POST", "/" + protocol.API_GRANTS, raw, int(people.relay.clock()))})
    assert answer.status_code == 400


def test_grant_via_needs_an_https_relay_and_a_grant_file(people: People, tmp_path: Path) -> None:
    doctor, out = people.did(people.doctor), tmp_path / "g.hwgrant"
    base = ("grant", doctor, "--tag", "labs", "--expires", "1d")
    plain = people.patient(*base, "--out", out, "--via", "http://relay.example/")
    assert plain.code == 2 and plain.err.startswith("error: the relay URL") and not out.exists()
    piped = people.patient(*base, "--out", "-", "--via", people.relay.url)
    assert piped.code == 2 and "--via needs a grant file" in piped.err
    down = people.patient(*base, "--out", out, "--via", "https://127.0.0.1:9/")
    assert down.code == 5 and down.err.startswith("error: the relay could not be reached")
    assert "Traceback" not in plain.err + piped.err + down.err
