"""Grants end to end through the CLI: patient, doctor, stranger, status lists over real HTTP."""

from __future__ import annotations

import functools
import http.server
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import Cli, base_env, fhir_bundle
from local_status import status_path, typing_status_lists

SECRET_NAME = "Wolfgangsdottir"


@pytest.fixture
def people(tmp_path: Path) -> dict[str, Cli]:
    """A patient with two records, a doctor and a stranger, each with a wallet."""
    out = {}
    for name in ("patient", "doctor", "stranger"):
        env = base_env(tmp_path)
        env["HEALTHWALLET_HOME"] = str(tmp_path / name)
        env["HEALTHWALLET_PASSPHRASE"] = f"{name} passphrase"
        out[name] = typing_status_lists(Cli(tmp_path / name, env))
        out[name].ok("init", "--keystore", "file")
    labs = tmp_path / "labs-Wolfgangsdottir.json"
    labs.write_text(json.dumps(fhir_bundle(SECRET_NAME, "Ingibjorg")))
    scan = tmp_path / "knee.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + os.urandom(200_000))
    out["patient"].ok("record", "add", labs, "--tag", "ortho")
    out["patient"].ok("record", "add", scan, "--tag", "ortho")
    return out


def did(cli: Cli) -> str:
    return cli.ok("id").out.strip()


def no_wallet(cli: Cli, tmp_path: Path) -> Cli:
    env = dict(cli.env, HEALTHWALLET_HOME=str(tmp_path / "nobody"))
    return typing_status_lists(Cli(tmp_path / "nobody", env))


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_grant_verify_open_round_trip(people: dict[str, Cli], tmp_path: Path, fmt: str) -> None:
    patient, doctor, stranger = people["patient"], people["doctor"], people["stranger"]
    grant_file = tmp_path / f"grant-{fmt}.hwgrant"
    summary = patient.ok("grant", did(doctor), "--tag", "ortho", "--expires", "7d",
                         "--purpose", "second opinion", "--format", fmt,
                         "--out", grant_file, "--json").json()
    assert set(summary) >= {"grant_id", "recipient", "expires", "records", "file"}
    assert summary["grant_id"].startswith("urn:uuid:") and summary["recipient"] == did(doctor)
    assert len(summary["records"]) == 2 and summary["file"] == str(grant_file)
    assert SECRET_NAME.encode() not in grant_file.read_bytes()

    verdict = doctor.ok("verify", grant_file, "--json").json()
    assert verdict["valid"] is True
    assert set(verdict) >= {"valid", "grant_id", "issuer", "recipient", "purpose", "expires",
                            "records", "checks"}
    assert verdict["issuer"] == did(patient) and verdict["purpose"] == "second opinion"
    assert [r["media_type"] for r in verdict["records"]] == ["application/fhir+json", "application/pdf"]
    assert [c["name"] for c in verdict["checks"]] == ["proof", "validity", "envelope", "status", "recipient"]
    # a verifier with no wallet runs every check but the recipient one
    anyone = no_wallet(doctor, tmp_path).ok("verify", grant_file, "--json").json()
    assert anyone["valid"] is True and "recipient" not in [c["name"] for c in anyone["checks"]]
    human = doctor.ok("verify", grant_file).out
    assert "✓ proof" in human and "valid until" in human and SECRET_NAME not in human

    out_dir = tmp_path / f"opened-{fmt}"
    opened = doctor.ok("open", grant_file, "--out", out_dir, "--json").json()
    assert opened["grant_id"] == summary["grant_id"]
    assert all(r["verified"] for r in opened["records"])
    names = sorted(Path(r["path"]).name for r in opened["records"])
    assert names == ["knee.pdf", "labs-Wolfgangsdottir.json"]
    assert json.loads((out_dir / "labs-Wolfgangsdottir.json").read_text())["entry"][0]["resource"]["name"][0]["family"] == SECRET_NAME

    # someone else's grant: not addressed to you, exit 1, nothing written
    refused = stranger("open", grant_file, "--out", tmp_path / "stolen")
    assert refused.code == 1 and "not addressed to you" in refused.err
    assert not (tmp_path / "stolen").exists() or not any((tmp_path / "stolen").iterdir())
    assert stranger("verify", grant_file).code == 1


def test_validity_window_and_bad_requests(people: dict[str, Cli], tmp_path: Path) -> None:
    patient, doctor = people["patient"], people["doctor"]
    grant_file = tmp_path / "g.hwgrant"
    summary = patient.ok("grant", did(doctor), "--type", "pdf", "--expires", "2h",
                         "--out", grant_file, "--json").json()
    from datetime import datetime, timedelta
    expires = datetime.fromisoformat(summary["expires"].replace("Z", "+00:00"))
    later = (expires + timedelta(minutes=10)).isoformat()
    expired = doctor("verify", grant_file, "--at", later, "--json")
    assert expired.code == 1
    validity = next(c for c in expired.json()["checks"] if c["name"] == "validity")
    assert validity["ok"] is False
    earlier = (expires - timedelta(minutes=30)).isoformat()
    assert doctor("verify", grant_file, "--at", earlier).code == 0

    doctor_did = did(doctor)
    for args, fragment in [
        (["--expires", "2020-01-01T00:00:00Z"], "not in the future"),
        (["--expires", "400d"], "more than 365 days"),
        (["--expires", "tomorrow"], "ISO 8601"),
        (["--expires", "2030-01-01T00:00:00"], "time zone"),
    ]:
        result = patient("grant", doctor_did, "--type", "pdf", *args, "--out", tmp_path / "x")
        assert result.code == 2 and fragment in result.err, (args, result.err)
        assert not (tmp_path / "x").exists()
    bad_did = patient("grant", "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",
                      "--type", "pdf", "--expires", "1d", "--out", tmp_path / "x")
    assert bad_did.code == 2 and "Ed25519" in bad_did.err
    assert patient("grant", doctor_did, "--record", "ffffffffffffffff", "--expires", "1d",
                   "--out", tmp_path / "x").code == 3
    assert patient("grant", doctor_did, "--expires", "1d", "--out", tmp_path / "x").code == 2
    patient.ok("config", "set", "max-expiry-days", "30")
    assert patient("grant", doctor_did, "--type", "pdf", "--expires", "31d", "--out", tmp_path / "x").code == 2


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_revoke_publish_and_verify_over_http(people: dict[str, Cli], tmp_path: Path,
                                             http_dir: tuple[Path, str]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    root, base = http_dir
    patient.ok("config", "set", "status-url", base + "/status/")
    doctor.ok("config", "set", "allow-local-urls", "true")  # the list is served on 127.0.0.1
    kept, revoked = tmp_path / "kept.hwgrant", tmp_path / "revoked.hwgrant"
    hosted = patient.ok("grant", did(doctor), "--type", "pdf", "--expires", "1d", "--out", kept)
    assert "note:" not in hosted.err  # a hosted list needs no reminder
    gid = patient.ok("grant", did(doctor), "--type", "fhir", "--expires", "1d", "--out", revoked,
                     "--json").json()["grant_id"]
    assert patient.ok("revoke", gid, "--json").json() == {"grant_id": gid, "status": "revoked",
                                                          "already_revoked": False}
    assert patient.ok("revoke", gid.removeprefix("urn:uuid:"), "--json").json()["already_revoked"] is True
    statuses = {g["grant_id"]: g["status"] for g in patient.ok("grants", "--json").json()["grants"]}
    assert statuses[gid] == "revoked" and sorted(statuses.values()) == ["active", "revoked"]
    published = patient.ok("status", "publish", "--out", root / "status", "--json").json()
    assert published["files"] and published["status_url"] == base + "/status/"

    # the grants name the hosted URL: the verifier fetches it over HTTP
    assert doctor.ok("verify", kept, "--json").json()["valid"] is True
    result = doctor("verify", revoked, "--json")
    assert result.code == 1
    status = next(c for c in result.json()["checks"] if c["name"] == "status")
    assert status["ok"] is False and "revoked" in status["detail"]
    assert doctor("open", revoked, "--out", tmp_path / "o").code == 1
    # an explicit --status-list URL works too; a list that cannot be fetched fails closed
    explicit = doctor("verify", revoked, "--status-list", published_url(published, base))
    assert explicit.code == 1
    unreachable = doctor("verify", kept, "--status-list", "http://127.0.0.1:9/none.json", "--json")
    assert unreachable.code == 1

    log = patient.ok("log", "--json").json()
    assert log["ok"] is True
    assert [e["event"] for e in log["entries"]] == ["grant.issued", "grant.issued", "grant.revoked"]
    assert SECRET_NAME not in json.dumps(log)


def test_an_unpublished_status_list_is_named_and_a_sent_copy_verifies(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    grant_file = tmp_path / "g.hwgrant"
    issued = patient.ok("grant", did(doctor), "--type", "pdf", "--expires", "1d",
                        "--out", grant_file, "--json")
    status_list = issued.json()["status_list"]
    assert status_list.startswith("file://")
    # the patient is told the doctor cannot see a revocation without a published list
    assert issued.err.startswith(f"note: {status_list} is on this machine only; set `status-url`")
    sent = tmp_path / "sent"
    patient.ok("status", "publish", "--out", sent)

    # On the doctor's machine the patient's file:// list does not exist.
    status_dir = patient.home / "status"
    status_dir.rename(tmp_path / "elsewhere")
    try:
        result = doctor("verify", grant_file, "--json")
        assert result.code == 1
        check = next(c for c in result.json()["checks"] if c["name"] == "status")
        assert check["ok"] is False
        assert check["detail"] == (
            f"status list is on the issuer's machine only ({status_list}); ask them for the "
            "published list (`status publish`) and pass it with --status-list"
        )
        # the copy the patient sends verifies, and opens
        copy = str(sent / "1.json")
        assert doctor.ok("verify", grant_file, "--status-list", copy, "--json").json()["valid"]
        opened = doctor.ok("open", grant_file, "--status-list", copy, "--out", tmp_path / "o",
                           "--json").json()
        assert [r["verified"] for r in opened["records"]] == [True]
    finally:
        (tmp_path / "elsewhere").rename(status_dir)


def published_url(published: dict[str, object], base: str) -> str:
    files = published["files"]
    assert isinstance(files, list)
    return f"{base}/status/{Path(files[0]).name}"


def test_audit_log_tamper_is_named(people: dict[str, Cli], tmp_path: Path) -> None:
    patient, doctor = people["patient"], people["doctor"]
    patient.ok("grant", did(doctor), "--type", "pdf", "--expires", "1d", "--out", tmp_path / "a")
    patient.ok("grant", did(doctor), "--type", "pdf", "--expires", "1d", "--out", tmp_path / "b")
    log = patient.home / "audit.log"
    lines = log.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["sealed"] = json.loads(lines[1])["sealed"]  # entries are sealed: swap their contents
    lines[0] = json.dumps(entry)
    log.write_text("\n".join(lines) + "\n")
    result = patient("log", "--json")
    assert result.code == 1 and result.json()["first_bad"] == 1


def test_not_a_grant_is_exit_2(people: dict[str, Cli], tmp_path: Path) -> None:
    doctor = people["doctor"]
    grant_file = tmp_path / "g.hwgrant"
    people["patient"].ok("grant", did(doctor), "--type", "pdf", "--expires", "1d", "--out", grant_file)
    data = grant_file.read_bytes()
    cases = {
        "empty": b"",
        "truncated-header": data[:40],
        "binary": os.urandom(5000),
        "text": b"hello, I am not a grant\n",
        "json": json.dumps({"@context": [], "type": ["VerifiableCredential"]}).encode(),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        for command in ("verify", "open"):
            args = [command, path] + (["--out", tmp_path / "o"] if command == "open" else [])
            result = doctor(*args)
            assert result.code == 2, (name, command, result)
            assert result.err.startswith("error: ") and "Traceback" not in result.err
    huge = tmp_path / "huge"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024**3)  # sparse: 3 GiB of zeros
    result = doctor("verify", huge)
    assert result.code == 2 and "Traceback" not in result.err
    truncated = tmp_path / "truncated-payload"
    truncated.write_bytes(data[:-100])
    assert doctor("verify", truncated).code in (1, 2)
    assert doctor("verify", tmp_path / "missing").code == 3


def test_random_byte_flips_are_never_accepted(people: dict[str, Cli], tmp_path: Path) -> None:
    doctor = people["doctor"]
    grant_file = tmp_path / "g.hwgrant"
    people["patient"].ok("grant", did(doctor), "--tag", "ortho", "--expires", "1d", "--format", "jwt",
                         "--out", grant_file)
    data = grant_file.read_bytes()
    rng = random.Random(7)
    positions = [rng.randrange(len(data)) for _ in range(12)] + [0, 30, 200, len(data) - 1]
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip-{position}"
        path.write_bytes(bytes(flipped))
        result = doctor("verify", path)
        assert result.code in (1, 2), (position, result)
        assert "Traceback" not in result.err
        opened = doctor("open", path, "--out", tmp_path / f"out-{position}")
        assert opened.code in (1, 2)
        assert not (tmp_path / f"out-{position}").exists() or not any((tmp_path / f"out-{position}").iterdir())


def test_exit_codes_are_right_every_time(people: dict[str, Cli], tmp_path: Path) -> None:
    """didkit 0.3.3 can crash at interpreter shutdown; 100 runs must all exit as they should."""
    doctor = people["doctor"]
    grant_file = tmp_path / "g.hwgrant"
    people["patient"].ok("grant", did(doctor), "--type", "pdf", "--expires", "1d", "--out", grant_file)
    late = "2099-01-01T00:00:00Z"
    listed = status_path(grant_file.read_bytes())  # the patient's list, as the doctor types it

    def run(i: int) -> tuple[int, int]:
        args = [sys.executable, "-m", "healthwallet", "verify", str(grant_file),
                "--status-list", str(listed)]
        expected = 0
        if i % 2:
            args += ["--at", late]
            expected = 1
        proc = subprocess.run(args, env=doctor.env, capture_output=True, timeout=120)
        return expected, proc.returncode

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(100)))
    wrong = [(i, r) for i, r in enumerate(results) if r[0] != r[1]]
    assert not wrong, wrong
