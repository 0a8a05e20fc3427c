"""Every byte that verifies is the byte that was signed, through `healthwallet verify`."""

from __future__ import annotations

from pathlib import Path

from conftest import Cli
from local_status import typing_status_lists
from respellings import ISSUED_CREDENTIAL, grant_file, respell_container

GRANT_MAGIC = b"healthwallet-grant/v1\n"


def test_verify_refuses_a_grant_respelled_after_signing(wallet: Cli, tmp_path: Path) -> None:
    grant = grant_file(wallet, tmp_path)
    anyone = typing_status_lists(
        Cli(tmp_path / "nobody", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "nobody")))
    )
    assert anyone("verify", grant).code == 0
    for name in ("issuanceDate-millis", "type-reordered", "expirationDate-offset"):
        respelled = tmp_path / f"{name}.hwgrant"
        respelled.write_bytes(
            respell_container(grant.read_bytes(), GRANT_MAGIC, ISSUED_CREDENTIAL[name])
        )
        result = anyone("verify", respelled)
        assert result.code == 1, (name, result)
        assert "INVALID" in result.out and "is not written as" in result.out, (name, result)
        assert "Traceback" not in result.err
