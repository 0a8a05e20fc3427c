"""Knowing whom a grant goes to, as transcripts: an institution vouches for its staff, a patient
trusts it (by hand or through a signed trust list), and `grant` checks a presentation first.

The hospital's status lists and the operator's trust list are served over real HTTP on
127.0.0.1; patients opt in to loopback URLs with `allow-local-urls`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, new_wallet, serving

from healthwallet import keys

SITE = "site"


class World:
    """A hospital, a doctor holding a ClinicianCredential from it, a stranger, an operator."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.site = root / SITE
        self.base_url = base_url
        self.hospital = new_wallet(root, "hospital")
        self.doctor = new_wallet(root, "doctor")
        self.stranger = new_wallet(root, "stranger")
        self.operator = new_wallet(root, "operator")
        self.hospital.ok("config", "set", "status-url", f"{base_url}/status/")
        self.credential = self.issue(self.doctor, "ana.json")
        self.doctor.ok("credential", "store", self.credential)

    def issue(self, holder: Cli, name: str, *extra: str, expires: str = "365d") -> Path:
        out = self.root / name
        self.hospital.ok("credential", "issue", did(holder), "--type", "ClinicianCredential",
                         "--name", "Dr Ana Costa", "--role", "cardiologist",
                         "--licence-number", "12345", "--jurisdiction", "PT",
                         "--expires", expires, "--out", out, *extra)
        self.publish_status()
        return out

    def publish_status(self) -> None:
        self.hospital.ok("status", "publish", "--out", self.site / "status")

    def patient(self, name: str, trust_hospital: bool = True) -> Cli:
        patient = new_wallet(self.root, name)
        patient.ok("config", "set", "allow-local-urls", "true")
        record = self.root / f"{name}-obs.json"
        record.write_text(json.dumps({"resourceType": "Observation", "status": "final",
                                      "code": {"text": "Wolfgangsdottir"}}))
        patient.ok("record", "add", record, "--tag", "cardio")
        if trust_hospital:
            patient.ok("trust", "add", did(self.hospital), "--name", "Hospital de Santa Maria")
        return patient

    def present(self, patient: Cli, out: str, holder: Cli | None = None, *extra: str) -> Path:
        challenge = patient.ok("trust", "challenge", "--json").json()["challenge"]
        path = self.root / out
        (holder or self.doctor).ok("credential", "present", "--to", did(patient),
                                   "--challenge", challenge, "--out", path, *extra)
        return path


def did(cli: Cli) -> str:
    return cli.ok("id").out.strip()


def grant(patient: Cli, recipient: Cli | str, out: Path, *extra: str | Path) -> Any:
    to = recipient if isinstance(recipient, str) else did(recipient)
    return patient("grant", to, "--tag", "cardio", "--expires", "7d", "--out", out, *extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("trust")
    (root / SITE / "status").mkdir(parents=True)
    with serving(root / SITE) as base_url:
        yield World(root, base_url)


def test_vouched_grant_names_who_and_by_whom_and_records_the_credential(
    world: World, tmp_path: Path
) -> None:
    patient = world.patient("p-vouched")
    presentation = world.present(patient, "vp-vouched.json")
    out = tmp_path / "g.hwgrant"
    result = grant(patient, world.doctor, out, "--require-credential", presentation)
    assert result.code == 0, result
    statement = ("Dr Ana Costa, cardiologist, licence 12345 (PT), vouched for by Hospital de "
                 "Santa Maria (trusted since ")
    assert "vouched: " + statement in result.err  # shown before sealing
    assert statement in result.out
    credential_id = json.loads(world.credential.read_text())["id"]
    verdict = world.doctor("verify", out, "--status-list", patient.home / "status" / "1.json",
                           "--json")
    assert verdict.code == 0 and verdict.json()["vouched_by"] == credential_id
    shown = world.doctor.ok("verify", out, "--status-list", patient.home / "status" / "1.json")
    assert f"vouched by  credential {credential_id}" in shown.out
    issued = [e for e in patient.ok("log", "--json").json()["entries"]
              if e["event"] == "grant.issued"]
    assert issued[-1]["details"]["vouched_by"] == credential_id


def test_jwt_credential_in_a_jwt_presentation_vouches(world: World, tmp_path: Path) -> None:
    jwt_holder = new_wallet(world.root, "doctor-jwt")
    token_file = world.issue(jwt_holder, "ana-jwt.txt", "--format", "jwt")
    assert token_file.read_text().count(".") == 2
    jwt_holder.ok("credential", "store", token_file)
    patient = world.patient("p-jwt")
    presentation = world.present(patient, "vp-jwt.txt", jwt_holder, "--format", "jwt")
    result = grant(patient, jwt_holder, tmp_path / "g.hwgrant", "--require-credential",
                   presentation, "--json")
    assert result.code == 0, result
    assert result.json()["vouched"]["issuer_name"] == "Hospital de Santa Maria"


def test_grant_without_a_credential_is_refused_once_a_trust_list_exists(
    world: World, tmp_path: Path
) -> None:
    patient = world.patient("p-none")
    refused = grant(patient, world.doctor, tmp_path / "g.hwgrant")
    assert refused.code == 1
    assert "error: no trusted institution vouches for " + did(world.doctor) in refused.err
    assert "--allow-unvouched" in refused.err
    assert not (tmp_path / "g.hwgrant").exists()
    allowed = grant(patient, world.doctor, tmp_path / "g.hwgrant", "--allow-unvouched")
    assert allowed.code == 0 and "warning: NOT vouched for" in allowed.err
    # The setting turns the requirement off; a wallet that trusts no issuer never had it.
    patient.ok("config", "set", "require-clinician-credential", "false")
    assert grant(patient, world.doctor, tmp_path / "g2.hwgrant").code == 0
    assert grant(world.patient("p-untrusting", trust_hospital=False), world.doctor,
                 tmp_path / "g3.hwgrant").code == 0


def test_unknown_issuer_is_refused(world: World, tmp_path: Path) -> None:
    patient = world.patient("p-unknown", trust_hospital=False)
    patient.ok("trust", "add", did(world.operator), "--name", "Some other hospital")
    refused = grant(patient, world.doctor, tmp_path / "g.hwgrant", "--require-credential",
                    world.present(patient, "vp-unknown.json"))
    assert refused.code == 1
    assert f"issued by {did(world.hospital)}, which you do not trust" in refused.err
    assert not (tmp_path / "g.hwgrant").exists()


def test_expired_staff_credential_is_refused(world: World, tmp_path: Path) -> None:
    holder = new_wallet(world.root, "doctor-expiring")
    short = world.issue(holder, "short.json", expires="3s")
    holder.ok("credential", "store", short)
    patient = world.patient("p-expired")
    patient.ok("config", "set", "clock-skew-seconds", "0")
    presentation = world.present(patient, "vp-expired.json", holder)
    expires = datetime.fromisoformat(json.loads(short.read_text())["expirationDate"])
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds() + 1))
    refused = grant(patient, holder, tmp_path / "g.hwgrant", "--require-credential", presentation)
    assert refused.code == 1 and "expired at" in refused.err, refused


def test_revoked_staff_credential_is_refused(world: World, tmp_path: Path) -> None:
    holder = new_wallet(world.root, "doctor-revoked")
    credential = world.issue(holder, "revoked.json")
    holder.ok("credential", "store", credential)
    patient = world.patient("p-revoked")
    presentation = world.present(patient, "vp-revoked.json", holder)
    world.hospital.ok("revoke", json.loads(credential.read_text())["id"])
    world.publish_status()
    refused = grant(patient, holder, tmp_path / "g.hwgrant", "--require-credential", presentation)
    assert refused.code == 1 and "was revoked by its issuer" in refused.err, refused
    listed = world.hospital.ok("grants", "--json").json()["grants"]
    assert {"credential"} <= {g["kind"] for g in listed}


def test_presentation_replayed_to_another_patient_is_refused(
    world: World, tmp_path: Path
) -> None:
    alice, bob = world.patient("p-alice"), world.patient("p-bob")
    for_alice = world.present(alice, "vp-alice.json")
    replayed = grant(bob, world.doctor, tmp_path / "bob.hwgrant", "--require-credential", for_alice)
    assert replayed.code == 1 and "answers no open challenge of this wallet" in replayed.err
    # Bob's own challenge, but a presentation made out to Alice: the domain gives it away.
    bob_challenge = bob.ok("trust", "challenge", "--json").json()["challenge"]
    misbound = tmp_path / "misbound.json"
    world.doctor.ok("credential", "present", "--to", did(alice), "--challenge", bob_challenge,
                    "--out", misbound)
    refused = grant(bob, world.doctor, tmp_path / "bob.hwgrant", "--require-credential", misbound)
    assert refused.code == 1 and "bound to another challenge or domain" in refused.err
    # Alice can use hers once; the same presentation again is a replay.
    assert grant(alice, world.doctor, tmp_path / "a1.hwgrant", "--require-credential",
                 for_alice).code == 0
    again = grant(alice, world.doctor, tmp_path / "a2.hwgrant", "--require-credential", for_alice)
    assert again.code == 1 and "answers no open challenge" in again.err


def test_presentation_by_someone_other_than_the_recipient_is_refused(
    world: World, tmp_path: Path
) -> None:
    patient = world.patient("p-phished")
    presentation = world.present(patient, "vp-phished.json")
    # The phisher forwards the doctor's presentation and asks for a grant to their own DID.
    refused = grant(patient, world.stranger, tmp_path / "g.hwgrant", "--require-credential",
                    presentation)
    assert refused.code == 1
    assert "made by someone other than the grant's recipient" in refused.err
    # Nor can the stranger present the doctor's credential as their own.
    stolen = world.stranger("credential", "store", world.credential)
    assert stolen.code == 2 and "issued to someone else" in stolen.err


def _trust_list(world: World, name: str, *issuers: Cli) -> Path:
    operator = world.operator
    for issuer in operator.ok("trust", "list", "--json").json()["issuers"]:
        operator.ok("trust", "remove", issuer["did"])
    for issuer in issuers:
        operator.ok("trust", "add", did(issuer), "--name", "Hospital de Santa Maria")
    out = world.site / name
    operator.ok("trust", "publish", "--name", "PT clinicians", "--expires", "90d", "--out", out)
    return out


def test_trust_list_with_a_bad_signature_is_refused(world: World, tmp_path: Path) -> None:
    patient = world.patient("p-badlist", trust_hospital=False)
    patient.ok("trust", "add", did(world.operator), "--name", "Registry", "--scope", "TrustList")
    signed = json.loads(_trust_list(world, "list-bad.json", world.hospital).read_text())
    signed["credentialSubject"]["trustedIssuers"][0]["id"] = did(world.stranger)
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(signed))
    refused = patient("trust", "import", forged)
    assert refused.code == 1 and "signature does not verify" in refused.err, refused
    assert patient.ok("trust", "list", "--json").json()["issuers"][0]["did"] == did(world.operator)
    # A list from an operator the patient never chose is refused too.
    stranger_list = tmp_path / "stranger-list.json"
    world.stranger.ok("trust", "add", did(world.stranger), "--name", "Me")
    world.stranger.ok("trust", "publish", "--name", "mine", "--expires", "9d", "--out",
                      stranger_list)
    unchosen = patient("trust", "import", stranger_list)
    assert unchosen.code == 1 and "operator is not trusted to publish" in unchosen.err


def test_trust_list_that_drops_an_issuer_after_import(world: World, tmp_path: Path) -> None:
    patient = world.patient("p-list", trust_hospital=False)
    patient.ok("trust", "add", did(world.operator), "--name", "Registry", "--scope", "TrustList")
    first = _trust_list(world, "list-v1.json", world.hospital)
    imported = patient("trust", "import", f"{world.base_url}/list-v1.json", "--json")
    assert imported.code == 0, imported
    assert imported.json()["issuers"] == [did(world.hospital)]
    assert grant(patient, world.doctor, tmp_path / "g1.hwgrant", "--require-credential",
                 world.present(patient, "vp-list-1.json")).code == 0
    time.sleep(1.1)  # the next list is issued a second later
    _trust_list(world, "list-v2.json")
    dropped = patient("trust", "import", f"{world.base_url}/list-v2.json")
    assert dropped.code == 0
    assert f"no longer trusted (dropped by the list): {did(world.hospital)}" in dropped.out
    refused = grant(patient, world.doctor, tmp_path / "g2.hwgrant", "--require-credential",
                    world.present(patient, "vp-list-2.json"))
    assert refused.code == 1 and "which you do not trust" in refused.err
    # Replaying the older list does not bring the issuer back.
    rollback = patient("trust", "import", first)
    assert rollback.code == 1 and "older than the one already imported" in rollback.err


def test_trust_list_url_follows_the_status_list_fetch_rules(world: World) -> None:
    patient = world.patient("p-url", trust_hospital=False)
    patient.ok("config", "set", "allow-local-urls", "false")
    _trust_list(world, "list-url.json", world.hospital)
    refused = patient("trust", "import", f"{world.base_url}/list-url.json")
    # Plain http is only for loopback, and loopback only with `allow-local-urls`.
    assert refused.code == 2 and "the scheme must be https" in refused.err


def test_trust_store_and_held_credentials_are_not_readable_at_rest(world: World) -> None:
    patient = world.patient("p-at-rest")
    patient.ok("trust", "challenge")
    hospital_did = did(world.hospital)
    for path in (*patient.home.rglob("*"), *world.doctor.home.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            for secret in (b"Santa Maria", b"Ana Costa", b"12345", hospital_did.encode()):
                assert secret not in data, (path, secret)


def test_wrong_inputs_are_usage_errors(world: World, tmp_path: Path) -> None:
    patient = world.patient("p-usage", trust_hospital=False)
    assert patient("trust", "add", "did:web:example.org", "--name", "x").code == 2
    assert patient("trust", "add", did(world.hospital), "--name", "x", "--scope", "Any").code == 2
    assert patient("trust", "remove", did(world.hospital)).code == 3
    not_json = tmp_path / "vp.json"
    not_json.write_text("{not json")
    patient.ok("trust", "add", did(world.hospital), "--name", "H")
    bad = grant(patient, world.doctor, tmp_path / "g.hwgrant", "--require-credential", not_json)
    assert bad.code == 2 and "error:" in bad.err and "Traceback" not in bad.err
    assert world.hospital("credential", "issue", did(world.doctor), "--type", "Other",
                          "--name", "a", "--role", "b", "--licence-number", "1",
                          "--jurisdiction", "PT", "--expires", "1d", "--out",
                          tmp_path / "x.json").code == 2
    assert keys.is_did_key(did(world.doctor))
