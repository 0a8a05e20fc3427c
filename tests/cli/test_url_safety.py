"""URLs named by someone else, and crafted URLs anywhere a URL is read: transcripts.

A grant's status list URL is the sender's choice. It is fetched only through the guarded fetcher
(healthwallet/httpfetch.py), a `file://` one is never read, and a malformed one ends with a
documented exit code and an `error:`/`hint:` pair, never 70.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import Cli, base_env, fhir_bundle

from healthwallet.grants import GrantRecord, issue_grant
from healthwallet.keys import Identity

FORGER = Identity(hashlib.sha256(b"forger").digest())
CRAFTED = [
    "http://[::1",
    "https://[::1/status.json",
    "https://xn--zz.example/status.json",
    "https://" + "a" * 300 + ".example/status.json",
    "https://status.example:port/1.json",
    "https://status.example:99999/1.json",
    "https://status.example/%00.json",
    "https://status.example/" + "x" * 5000,
]


@pytest.fixture
def people(tmp_path: Path) -> dict[str, Cli]:
    out = {}
    for name in ("patient", "doctor"):
        env = base_env(tmp_path)
        env["HEALTHWALLET_HOME"] = str(tmp_path / name)
        env["HEALTHWALLET_PASSPHRASE"] = f"{name} passphrase"
        out[name] = Cli(tmp_path / name, env)
        out[name].ok("init", "--keystore", "file")
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle()))
    out["patient"].ok("record", "add", labs)
    return out


def did(cli: Cli) -> str:
    return cli.ok("id").out.strip()


def granted(people: dict[str, Cli], tmp_path: Path) -> Path:
    """A grant from the patient to the doctor (naming the patient's local status list)."""
    grant = tmp_path / "g.hwgrant"
    people["patient"].ok("grant", did(people["doctor"]), "--type", "fhir", "--expires", "1d",
                         "--out", grant)
    return grant


def forged_grant(path: Path, recipient: str, status_url: str) -> Path:
    """A grant signed by FORGER whose credentialStatus names ``status_url``."""
    content, salt = b"hello", bytes(range(32))

    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(content)

    record = GrantRecord(
        id="0a1b2c3d4e5f6071", media_type="text/plain", name="a.txt", salt=salt,
        commitment=hashlib.sha256(salt + content).hexdigest(), size=len(content), open=opener,
    )
    with path.open("wb") as out:
        issue_grant(
            out, FORGER, recipient, [record], purpose="treatment",
            expires=datetime.now(UTC) + timedelta(days=1),
            credential_status={
                "id": "urn:uuid:7d9e5c1a-0000-4000-8000-000000000001",
                "type": "StatusList2021Entry",
                "statusPurpose": "revocation",
                "statusListIndex": "0",
                "statusListCredential": status_url,
            },
        )
    return path


def status_check(cli: Cli, grant: Path) -> dict[str, object]:
    result = cli("verify", grant, "--json", timeout=30)  # a read of a FIFO would hang here
    assert result.code == 1 and "Traceback" not in result.err, result
    return next(c for c in result.json()["checks"] if c["name"] == "status")


def test_status_list_named_as_a_fifo_or_stdin_neither_hangs_nor_tells_which_files_exist(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    planted = tmp_path / "planted"
    planted.mkdir()
    patient.ok("config", "set", "status-url", planted.as_uri() + "/")
    grant = tmp_path / "g.hwgrant"
    named = patient.ok("grant", did(doctor), "--type", "fhir", "--expires", "1d", "--out", grant,
                       "--json").json()["status_list"]
    target = Path(named.removeprefix("file://"))
    expected = {
        "name": "status",
        "ok": False,
        "detail": f"status list is on the issuer's machine only ({named}); ask them for the "
                  "published list (`status publish`) and pass it with --status-list",
    }
    os.mkfifo(target)  # a FIFO with no writer: opening it for reading blocks
    assert status_check(doctor, grant) == expected
    target.unlink()
    target.symlink_to("/dev/stdin")
    assert status_check(doctor, grant) == expected
    target.unlink()
    assert status_check(doctor, grant) == expected  # missing: the very same answer
    patient.ok("status", "publish", "--out", tmp_path / "published")
    (tmp_path / "published" / target.name).rename(target)
    assert status_check(doctor, grant) == expected  # present and valid: still not read
    # Only the path the doctor types is read.
    typed = doctor.ok("verify", grant, "--status-list", target, "--json").json()
    assert typed["valid"] is True


def test_a_fifo_typed_as_status_list_is_refused_not_read(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    grant = granted(people, tmp_path)
    fifo = tmp_path / "list.json"
    os.mkfifo(fifo)
    result = people["doctor"]("verify", grant, "--status-list", fifo, "--json", timeout=30)
    assert result.code == 1
    status = next(c for c in result.json()["checks"] if c["name"] == "status")
    assert "is not a regular file" in status["detail"]


def test_crafted_url_in_a_grant_fails_verification_never_exit_70(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    doctor = people["doctor"]
    doctor_did = did(doctor)
    for number, url in enumerate(CRAFTED):
        grant = forged_grant(tmp_path / f"forged-{number}.hwgrant", doctor_did, url)
        status = status_check(doctor, grant)
        assert status["ok"] is False and "is not a usable URL" in str(status["detail"]), url
    opened = doctor("open", grant, "--out", tmp_path / "out")
    assert opened.code == 1 and opened.err.startswith("error: ") and "\nhint: " in opened.err


def test_crafted_urls_in_settings_and_arguments_are_usage_errors(
    people: dict[str, Cli], tmp_path: Path
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    grant = granted(people, tmp_path)
    share = tmp_path / "x.hwshare"
    share.write_bytes(b"junk")
    for number, url in enumerate(CRAFTED):
        setting = ("status-url", "ethereum.rpc-url")[number % 2]
        result = patient("config", "set", setting, url)
        assert result.code == 2, (setting, url, result)
        assert result.err.startswith("error: the ") and "\nhint: " in result.err
    for url in CRAFTED[::3]:
        verified = doctor("verify", grant, "--status-list", url)
        assert verified.code == 1 and "Traceback" not in verified.err
        ingest = doctor("research", "ingest", share, "--k", "1", "--out", tmp_path / "o",
                        "--status-list", url)
        assert ingest.code == 2, (url, ingest)
        assert ingest.err.startswith("error: ") and "\nhint: " in ingest.err
    assert patient.ok("config", "get", "status-url").out.strip() == ""  # nothing was stored
    # An RPC URL may carry an API key: its error names the problem, not the URL.
    secret = patient("config", "set", "ethereum.rpc-url", "https://node.example:x/?apikey=S3CR3T")
    assert secret.code == 2 and "S3CR3T" not in secret.err + secret.out
