"""Records re-tagged, re-labelled and re-typed without re-import; tags then drive grants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle


@pytest.fixture
def one(wallet: Cli, tmp_path: Path) -> tuple[Cli, str]:
    source = tmp_path / "labs.txt"
    source.write_text(json.dumps(fhir_bundle()))
    added = wallet.ok("record", "add", source, "--type", "other", "--json").json()
    return wallet, added["records"][0]["id"]


def _listed(wallet: Cli, record_id: str) -> dict:
    return next(r for r in wallet.ok("record", "list", "--json").json()["records"]
                if r["id"] == record_id)


def test_tag_and_untag_change_only_the_tags(one: tuple[Cli, str]) -> None:
    wallet, record_id = one
    before = _listed(wallet, record_id)
    tagged = wallet.ok("record", "tag", record_id[:6], "cardio", "2026", "--json").json()
    assert tagged["record"]["tags"] == ["2026", "cardio"]
    wallet.ok("record", "untag", record_id, "2026", "never-had-it")
    after = _listed(wallet, record_id)
    assert after["tags"] == ["cardio"]
    assert {k: v for k, v in after.items() if k != "tags"} == {
        k: v for k, v in before.items() if k != "tags"}
    assert wallet.ok("record", "list", "--tag", "cardio", "--json").json()["records"][0]["id"] \
        == record_id
    assert wallet.ok("doctor").code == 0  # content and commitment untouched


def test_a_tag_drives_a_grant_after_retagging(one: tuple[Cli, str], tmp_path: Path) -> None:
    wallet, record_id = one
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    wallet.ok("record", "tag", record_id, "for-dr")
    granted = wallet.ok("grant", doctor.ok("id").out.strip(), "--tag", "for-dr", "--expires",
                        "1d", "--out", tmp_path / "g.hwgrant", "--json").json()
    assert granted["records"] == [record_id]


def test_edit_relabels_and_retypes_after_checking_the_content(one: tuple[Cli, str]) -> None:
    wallet, record_id = one
    edited = wallet.ok("record", "edit", record_id, "--label", "Blood test, March", "--type",
                       "fhir", "--json").json()["record"]
    assert edited["label"] == "Blood test, March" and edited["type"] == "fhir"
    assert edited["media_type"] == "application/fhir+json"
    assert edited["resource_counts"] == {"Observation": 2, "Patient": 1}
    not_pdf = wallet("record", "edit", record_id, "--type", "pdf")
    assert not_pdf.code == 2 and "is not a PDF" in not_pdf.err
    assert _listed(wallet, record_id)["type"] == "fhir"
    nothing = wallet("record", "edit", record_id)
    assert nothing.code == 2 and "say what to change" in nothing.err


@pytest.mark.parametrize("tag", ["", "two words", "x" * 65, "bell\x07"])
def test_a_bad_tag_is_refused_everywhere(one: tuple[Cli, str], tag: str, tmp_path: Path) -> None:
    wallet, record_id = one
    assert wallet("record", "tag", record_id, tag).code == 2
    source = tmp_path / "x.pdf"
    source.write_bytes(b"%PDF-1.4\n%%EOF\n")
    assert wallet("record", "add", source, "--tag", tag).code == 2


def test_rm_of_a_record_in_an_active_grant_warns_and_names_the_grant(one: tuple[Cli, str],
                                                                    tmp_path: Path) -> None:
    wallet, record_id = one
    doctor = Cli(tmp_path / "doc", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "doc")))
    doctor.ok("init", "--keystore", "file")
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4\n%%EOF\n")
    other_id = wallet.ok("record", "add", other, "--json").json()["records"][0]["id"]
    grant_id = wallet.ok("grant", doctor.ok("id").out.strip(), "--record", record_id,
                         "--record", other_id, "--expires", "1d", "--out",
                         tmp_path / "g.hwgrant", "--json").json()["grant_id"]
    result = wallet("record", "rm", record_id, "--json")
    assert result.code == 0 and result.json()["in_grants"] == [grant_id]
    assert f"warning: record {record_id} is in grant {grant_id}" in result.err
    assert f"healthwallet revoke {grant_id}" in result.err
    wallet.ok("revoke", grant_id)
    quiet = wallet("record", "rm", other_id, "--json")
    assert quiet.code == 0 and quiet.json()["in_grants"] == [] and "warning" not in quiet.err
