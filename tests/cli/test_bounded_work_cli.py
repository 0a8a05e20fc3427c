"""Bounded work for any input, through the CLI: huge identifiers and costly KDF headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Cli
from respellings import grant_file, reframe

GRANT_MAGIC = b"healthwallet-grant/v1\n"
BACKUP_MAGIC_LEN = 23
MEGABYTE_DID_KEY = "did:key:z6Mk" + "z" * 1_000_000


def test_grant_whose_issuer_is_a_megabyte_did_key_is_refused_before_decoding_it(
    wallet: Cli, tmp_path: Path
) -> None:
    grant = grant_file(wallet, tmp_path)

    def huge_issuer(header: dict[str, Any]) -> None:
        header["credential"]["issuer"] = MEGABYTE_DID_KEY

    forged = tmp_path / "forged.hwgrant"
    forged.write_bytes(reframe(grant.read_bytes(), len(GRANT_MAGIC), huge_issuer))
    result = wallet("verify", forged, timeout=60)  # minutes of base58 before the cap
    assert result.code == 2, result
    assert result.err.startswith("error: ") and "\nhint: " in result.err
    assert "zzzz" not in result.err and "Traceback" not in result.err


def test_backup_header_asking_for_more_argon2id_cost_is_refused_before_deriving(
    wallet: Cli, tmp_path: Path
) -> None:
    passphrase = tmp_path / "bp.txt"
    passphrase.write_text("ferry lantern quartz 1961\n")
    backup = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", backup, "--backup-passphrase-file", passphrase)

    def costly(header: dict[str, Any]) -> None:
        for recipient in header["recipients"]:
            if recipient["type"] == "passphrase":
                recipient.update(opslimit=12, memlimit=1024**3)  # the probe from issue 9

    edited = tmp_path / "edited.hwbackup"
    edited.write_bytes(reframe(backup.read_bytes(), BACKUP_MAGIC_LEN, costly))
    target = Cli(tmp_path / "r", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "r")))
    result = target("restore", edited, "--backup-passphrase-file", passphrase,
                    "--keystore", "file")
    assert result.code == 1, result
    assert result.err.startswith("error: the backup asks for a higher Argon2id cost")
    assert "\nhint: " in result.err
    assert not target.home.exists()
