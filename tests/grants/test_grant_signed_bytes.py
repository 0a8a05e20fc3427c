"""Every byte that verifies is the byte that was signed: respelled grants and status lists fail."""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from grant_helpers import DOCTOR, EXPIRES, ISSUED, LATER, PATIENT, RECORDS
from respellings import ISSUED_CREDENTIAL, STATUS_LIST, assert_refused, respell_container

from healthwallet import grants
from healthwallet.errors import EXIT_VERIFY, HealthWalletError
from healthwallet.issued import IssuedGrants

PURPOSE = "second opinion \u2014 caf\u00e9 au lait spots"  # NFC, so it has an NFD twin


@dataclass(frozen=True)
class Sample:
    data: bytes
    status_list: dict[str, Any]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    registry = IssuedGrants(tmp_path_factory.mktemp("patient"), PATIENT, clock=lambda: ISSUED)
    out = io.BytesIO()
    summary = registry.issue(out, RECORDS[:1], DOCTOR.did, purpose=PURPOSE, expires=EXPIRES)
    list_path = urllib.request.url2pathname(urllib.parse.urlsplit(summary["status_list"]).path)
    return Sample(out.getvalue(), json.loads(Path(list_path).read_text()))


def outcome(data: bytes, status_source: str | None = None) -> tuple[int, str]:
    """(exit code the CLI would give, what failed)."""
    try:
        verdict = grants.verify_grant(io.BytesIO(data), now=LATER, status_source=status_source)
        verdict.raise_for_failure()
    except HealthWalletError as exc:
        return exc.exit_code, exc.message
    return 0, ""


def test_the_grant_as_issued_verifies(sample: Sample, tmp_path: Path) -> None:
    list_file = tmp_path / "list.json"
    list_file.write_text(json.dumps(sample.status_list))
    assert outcome(sample.data, str(list_file)) == (0, "")
    # Without the list typed by the verifier, the file:// list the grant names is never read.
    code, message = outcome(sample.data)
    assert code == 1 and "issuer's machine only" in message


@pytest.mark.parametrize("name", sorted(ISSUED_CREDENTIAL))
def test_respelled_grant_credential_does_not_verify(sample: Sample, name: str) -> None:
    code, message = outcome(respell_container(sample.data, grants.MAGIC, ISSUED_CREDENTIAL[name]))
    assert_refused(name, code, message)


@pytest.mark.parametrize("name", sorted(STATUS_LIST))
def test_respelled_status_list_does_not_verify(sample: Sample, name: str, tmp_path: Path) -> None:
    status_list = json.loads(json.dumps(sample.status_list))
    STATUS_LIST[name](status_list)
    list_file = tmp_path / "list.json"
    list_file.write_text(json.dumps(status_list))
    code, message = outcome(sample.data, str(list_file))
    assert code == EXIT_VERIFY and "status" in message, (name, message)
