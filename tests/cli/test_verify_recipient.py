"""`verify` without a wallet says the recipient was not checked; `--recipient DID` checks it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle
from local_status import typing_status_lists


@pytest.fixture
def grant(tmp_path: Path, wallet: Cli) -> tuple[Path, str, Cli]:
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", labs, "--tag", "t")
    doctor_did = doctor.ok("id").out.strip()
    grant_file = tmp_path / "g.hwgrant"
    wallet.ok("grant", doctor_did, "--tag", "t", "--expires", "7d", "--out", grant_file)
    nobody = typing_status_lists(
        Cli(tmp_path / "nobody", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "nobody")))
    )
    return grant_file, doctor_did, nobody


def test_verify_without_a_wallet_says_the_recipient_was_not_checked(grant) -> None:
    grant_file, _doctor_did, nobody = grant
    human = nobody("verify", grant_file)
    assert human.code == 0
    assert "recipient  NOT CHECKED" in human.out and "--recipient DID" in human.out
    machine = nobody.ok("verify", grant_file, "--json").json()
    assert machine["recipient_checked"] is False


def test_recipient_option_checks_the_grant_is_for_that_did(grant, wallet: Cli) -> None:
    grant_file, doctor_did, nobody = grant
    checked = nobody.ok("verify", grant_file, "--recipient", doctor_did, "--json").json()
    assert checked["recipient_checked"] is True and checked["valid"] is True
    assert {"name": "recipient", "ok": True,
            "detail": f"addressed to {doctor_did}"} in checked["checks"]
    assert "NOT CHECKED" not in nobody.ok("verify", grant_file, "--recipient", doctor_did).out

    someone_else = wallet.ok("id").out.strip()
    wrong = nobody("verify", grant_file, "--recipient", someone_else, "--json")
    assert wrong.code == 1 and wrong.json()["valid"] is False
    bad = nobody("verify", grant_file, "--recipient", "did:key:not-a-key")
    assert bad.code == 2 and bad.err.startswith("error: ")


def test_expires_as_a_date_means_the_end_of_that_day_and_says_so(tmp_path: Path,
                                                                 wallet: Cli) -> None:
    from datetime import UTC, date, datetime, timedelta

    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", labs, "--tag", "t")
    day = date.today() + timedelta(days=3)
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    result = wallet("grant", doctor.ok("id").out.strip(), "--tag", "t", "--expires", day.isoformat(),
                    "--out", tmp_path / "g.hwgrant", "--json", env={"TZ": "EST5"})
    assert result.code == 0, result
    end_of_day_new_york = datetime(day.year, day.month, day.day, 23, 59, 59) + timedelta(hours=5)
    expires = datetime.fromisoformat(result.json()["expires"].replace("Z", "+00:00"))
    assert expires == end_of_day_new_york.replace(tzinfo=UTC)
    assert (f"note: --expires {day.isoformat()} means the end of that day in your time zone: "
            f"{day.isoformat()} 23:59:59 -0500") in result.err
