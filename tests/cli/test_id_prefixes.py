"""Ids as people see them: unique prefixes, with or without `urn:uuid:`, for records and grants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle

from healthwallet.errors import NotFoundError, UsageError
from healthwallet.idprefix import resolve_id

GRANTS = ["urn:uuid:637990bb-1111-4000-8000-000000000001",
          "urn:uuid:637990bb-2222-4000-8000-000000000002",
          "urn:uuid:a1b2c3d4-3333-4000-8000-000000000003"]


@pytest.mark.parametrize("typed", ["a1b2", "A1B2C3", "urn:uuid:a1b2c3d4", GRANTS[2],
                                   GRANTS[2].removeprefix("urn:uuid:")])
def test_a_unique_prefix_with_or_without_urn_uuid_names_one_grant(typed: str) -> None:
    assert resolve_id(typed, GRANTS, kind="grant", list_command="grants") == GRANTS[2]


def test_an_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_id("637990bb", GRANTS, kind="grant", list_command="grants")
    assert "ambiguous" in caught.value.message
    assert GRANTS[0] in caught.value.message and GRANTS[1] in caught.value.message


def test_a_too_short_prefix_says_so_rather_than_not_found() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_id("637", GRANTS, kind="grant", list_command="grants")
    assert "at least 4 characters" in caught.value.message


def test_no_match_is_not_found_with_the_listing_command() -> None:
    with pytest.raises(NotFoundError) as caught:
        resolve_id("ffff", GRANTS, kind="grant", list_command="grants")
    assert "`healthwallet grants`" in caught.value.hint


def test_revoke_takes_the_prefix_that_grants_shows(tmp_path: Path, wallet: Cli) -> None:
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    labs = tmp_path / "labs.json"
    labs.write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", labs, "--tag", "t")
    grant_id = wallet.ok("grant", doctor.ok("id").out.strip(), "--tag", "t", "--expires", "7d",
                         "--out", tmp_path / "g.hwgrant", "--json").json()["grant_id"]
    short = grant_id.removeprefix("urn:uuid:")[:8]

    revoked = wallet("revoke", short, "--json")
    assert revoked.code == 0, revoked
    assert revoked.json()["grant_id"] == grant_id
    again = wallet("revoke", "urn:uuid:" + short, "--json")
    assert again.code == 0 and again.json()["already_revoked"] is True
    too_short = wallet("revoke", short[:3])
    assert too_short.code == 2 and "at least 4 characters" in too_short.err


def test_record_commands_take_prefixes_and_name_ambiguity(wallet: Cli, tmp_path: Path) -> None:
    ids = []
    for number in range(3):
        source = tmp_path / f"r{number}.json"
        source.write_text(json.dumps(fhir_bundle(family=f"F{number}")))
        ids.append(wallet.ok("record", "add", source, "--json").json()["records"][0]["id"])
    out = tmp_path / "back.json"
    wallet.ok("record", "show", ids[0][:6], "--out", out)
    assert out.read_bytes() == (tmp_path / "r0.json").read_bytes()
    short = wallet("record", "show", ids[0][:2], "--out", tmp_path / "x.json")
    assert short.code == 2 and "at least 4 characters" in short.err
    missing = wallet("record", "show", "ffffffffffff0000")
    assert missing.code == 3 and "no such record" in missing.err
