"""Every byte that verifies is the byte that was signed: respelled consents fail to verify."""

from __future__ import annotations

import io

import pytest
from local_status import status_path
from respellings import ISSUED_CREDENTIAL, assert_refused, respell_container
from share_helpers import LATER, RESEARCH, Shared, patient_identity, person, share

from healthwallet import shares
from healthwallet.errors import HealthWalletError

SHARE_RESPELLINGS = {
    **ISSUED_CREDENTIAL,
    "dataCategories-reordered": lambda c: c["credentialSubject"].update(
        dataCategories=c["credentialSubject"]["dataCategories"][::-1]
    ),
    "dataCategories-repeated": lambda c: c["credentialSubject"].update(
        dataCategories=c["credentialSubject"]["dataCategories"] * 2
    ),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    people = [person(1, age=51), person(2, age=67)]
    return share(tmp_path_factory.mktemp("patient"), patient_identity(1), people)


def outcome(data: bytes) -> tuple[int, str]:
    """(exit code the CLI would give, what failed)."""
    try:
        local = status_path(data)  # the consent's own file:// list is never read: pass it
        lists = shares.StatusLists([local] if local else [])
        verdict = shares.verify_share(
            io.BytesIO(data), recipient_did=RESEARCH.did, now=LATER, status=lists
        )
        verdict.raise_for_failure()
    except HealthWalletError as exc:
        return exc.exit_code, exc.message
    return 0, ""


def test_the_share_as_issued_verifies(shared: Shared) -> None:
    assert len(shared.summary["categories"]) > 1
    assert outcome(shared.data) == (0, "")


@pytest.mark.parametrize("name", sorted(SHARE_RESPELLINGS))
def test_respelled_consent_does_not_verify(shared: Shared, name: str) -> None:
    code, message = outcome(respell_container(shared.data, shares.MAGIC, SHARE_RESPELLINGS[name]))
    assert_refused(name, code, message)
