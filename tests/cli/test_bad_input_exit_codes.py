"""Class: type-confused credentials and damaged local files end with a documented exit code.

Every run here is the real CLI in a subprocess. Each bad input must give exit 1, 2 or 4 (as
docs/cli.md says for that command) with an ``error:``/``hint:`` pair, never 70 and never a
traceback.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli, Result, base_env, fhir_bundle

GRANT_MAGIC = b"healthwallet-grant/v1\n"
OTHER_DID = "did:key:z6MkvP2FFVYStbszEETA9ZMhWBoxPHL5wpFLr1aVAjceAbAV"


def assert_documented(result: Result, *codes: int) -> None:
    """Exit code is one of ``codes`` and stderr is exactly an error/hint pair, no traceback."""
    assert result.code in codes, result
    assert "Traceback" not in result.err, result.err
    assert "internal error" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), result.err


@pytest.fixture
def patient_with_grant(tmp_path: Path) -> tuple[Cli, Path]:
    env = base_env(tmp_path)
    env["HEALTHWALLET_PASSPHRASE"] = "correct horse battery staple"
    patient = Cli(tmp_path / "patient", dict(env, HEALTHWALLET_HOME=str(tmp_path / "patient")))
    patient.ok("init", "--keystore", "file")
    (tmp_path / "labs.json").write_text(json.dumps(fhir_bundle()))
    patient.ok("record", "add", tmp_path / "labs.json")
    doctor = patient.ok("--home", tmp_path / "doctor", "init", "--keystore", "file", "--json")
    grant = tmp_path / "knee.hwgrant"
    patient.ok("grant", doctor.json()["did"], "--type", "fhir", "--expires", "7d", "--out", grant)
    return patient, grant


def reframe(grant: Path, change: Any) -> bytes:
    """The grant file with its header JSON changed by ``change`` (framing kept valid)."""
    return reframe_bytes(grant.read_bytes(), GRANT_MAGIC, change)


TYPE_CONFUSIONS = {
    "object_in_type_list": lambda h: h["credential"]["type"].append({"a": 1}),
    "number_for_type": lambda h: h["credential"].__setitem__("type", 7),
    "number_for_issuer": lambda h: h["credential"].__setitem__("issuer", 12),
    "list_for_subject": lambda h: h["credential"].__setitem__("credentialSubject", [1]),
    "list_for_status": lambda h: h["credential"].__setitem__("credentialStatus", ["x"]),
    "object_for_date": lambda h: h["credential"].__setitem__("issuanceDate", {"a": 1}),
    "number_for_record_id": lambda h: h["credential"]["credentialSubject"]["records"][0]
    .__setitem__("id", 5),
    "list_for_envelope": lambda h: h.__setitem__("envelope", [1, 2]),
}


@pytest.mark.parametrize("confusion", sorted(TYPE_CONFUSIONS))
def test_type_confused_grant_is_bad_input_not_internal_error(
    patient_with_grant: tuple[Cli, Path], tmp_path: Path, confusion: str
) -> None:
    patient, grant = patient_with_grant
    forged = tmp_path / "forged.hwgrant"
    forged.write_bytes(reframe(grant, TYPE_CONFUSIONS[confusion]))
    assert_documented(patient("verify", forged), 1, 2)
    assert_documented(patient("--home", tmp_path / "doctor", "open", forged, "--out",
                              tmp_path / "out"), 1, 2)


NESTED = b"[" * 100_000 + b"]" * 100_000

DAMAGED_WALLET_FILES = {
    "nested_100k_deep": NESTED,
    "truncated": b'{"did": "did:key:z6Mk',
    "binary": bytes(range(256)) * 4,
    "a_list": b"[1, 2]",
    "did_is_a_number": None,  # filled from the real file below
    "history_is_a_string": None,
    "history_holds_numbers": None,
    "keystore_is_a_list": None,
    "duplicate_member": None,
    "nan": None,
}


def damaged_wallet_json(real: dict[str, Any], case: str) -> bytes:
    fixed = DAMAGED_WALLET_FILES[case]
    if fixed is not None:
        return fixed
    changed = dict(real)
    if case == "did_is_a_number":
        changed["did"] = 5
    elif case == "history_is_a_string":
        changed["history"] = "rotated"
    elif case == "history_holds_numbers":
        changed["history"] = [1, 2]
    elif case == "keystore_is_a_list":
        changed["keystore"] = ["file"]
    elif case == "nan":
        changed["created"] = float("nan")
    text = json.dumps(changed)
    if case == "duplicate_member":
        text = text[:-1] + ', "did": "did:key:z6MkOther"}'
    return text.encode()


@pytest.mark.parametrize("case", sorted(DAMAGED_WALLET_FILES))
def test_damaged_wallet_file_is_reported_not_crashed(wallet: Cli, case: str) -> None:
    path = wallet.home / "wallet.json"
    path.write_bytes(damaged_wallet_json(json.loads(path.read_bytes()), case))
    for command in (("record", "list"), ("id", "--history")):
        result = wallet(*command)
        assert_documented(result, 2)
        assert "wallet file" in result.err


DAMAGED_CONFIGS = {
    "nested_100k_deep": NESTED,
    "truncated": b'{"max-expiry-days": "3',
    "binary": b"\xff\xfe\x00garbage",
    "a_list": b'["status-url"]',
    "non_numeric_max_expiry": b'{"max-expiry-days": "abc"}',
    "huge_max_expiry": b'{"max-expiry-days": "99999999999"}',
    "non_numeric_skew": b'{"clock-skew-seconds": "1e3"}',
    "superscript_digit_skew": '{"clock-skew-seconds": "²"}'.encode(),
    "number_not_string": b'{"max-expiry-days": 30}',
    "list_value": b'{"status-url": ["https://a.example/"]}',
    "duplicate_member": b'{"ledger": "local", "ledger": "ethereum"}',
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CONFIGS))
def test_damaged_config_file_is_reported_not_crashed(wallet: Cli, tmp_path: Path,
                                                     case: str) -> None:
    (tmp_path / "labs.json").write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", tmp_path / "labs.json")
    (wallet.home / "config.json").write_bytes(DAMAGED_CONFIGS[case])
    for command in (
        ("config", "list"),
        ("grant", OTHER_DID, "--type", "fhir", "--expires", "7d", "--out", tmp_path / "g.hwgrant"),
        ("share", OTHER_DID, "--study", "S1", "--type", "fhir", "--dry-run"),
    ):
        result = wallet(*command)
        assert_documented(result, 2)
        assert "config file" in result.err


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1e3", "²", "99999999999", " 7"])
def test_non_numeric_setting_is_refused_when_set(wallet: Cli, value: str) -> None:
    assert_documented(wallet("config", "set", "max-expiry-days", value), 2)
    assert_documented(wallet("config", "set", "clock-skew-seconds", value + "x"), 2)


@pytest.mark.parametrize("content", [
    NESTED, b'{"format": "healthwallet-keystore/v1", "salt": ', b"\x00\x01\x02", b"[]",
    b'{"format": 1, "kdf": [], "opslimit": {}, "memlimit": "x", "salt": 5, "sealed": null}',
], ids=["nested_100k_deep", "truncated", "binary", "a_list", "wrong_types"])
def test_damaged_identity_key_is_a_keystore_error(wallet: Cli, content: bytes) -> None:
    (wallet.home / "identity.key").write_bytes(content)
    result = wallet("record", "list")
    assert_documented(result, 4)
    assert "keystore file" in result.err


@pytest.mark.parametrize("expires", ["999999999w", "99999999d", "0001-01-01T00:00:00+14:00",
                                     "9999-12-31T23:59:59-14:00"])
def test_out_of_range_expiry_argument_is_usage_error(wallet: Cli, tmp_path: Path,
                                                     expires: str) -> None:
    (tmp_path / "labs.json").write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", tmp_path / "labs.json")
    result = wallet("grant", OTHER_DID, "--type", "fhir", "--expires", expires, "--out",
                    tmp_path / "g.hwgrant")
    assert_documented(result, 2)


def test_deeply_nested_audit_log_line_is_reported_not_crashed(
    patient_with_grant: tuple[Cli, Path],
) -> None:
    patient, _ = patient_with_grant
    with (patient.home / "audit.log").open("ab") as log:
        log.write(NESTED + b"\n")
    grants = patient.ok("grants", "--json").json()["grants"]
    assert_documented(patient("revoke", grants[0]["grant_id"]), 2)


def reframe_bytes(data: bytes, magic: bytes, change: Any) -> bytes:
    """A framed file (magic, length, JSON header, payload) with its header changed."""
    start = len(magic)
    (length,) = struct.unpack(">I", data[start : start + 4])
    header = json.loads(data[start + 4 : start + 4 + length])
    change(header)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return magic + struct.pack(">I", len(raw)) + raw + data[start + 4 + length :]


def test_type_confused_share_is_rejected_not_internal_error(
    patient_with_grant: tuple[Cli, Path], tmp_path: Path
) -> None:
    patient, _ = patient_with_grant
    research = patient.ok("--home", tmp_path / "research", "init", "--keystore", "file",
                          "--json").json()["did"]
    share = tmp_path / "s.hwshare"
    patient.ok("config", "set", "status-url", "https://status.invalid/hw/")  # hostable, unused
    patient.ok("share", research, "--study", "S1", "--type", "fhir", "--out", share)
    forged = tmp_path / "forged.hwshare"
    forged.write_bytes(reframe_bytes(share.read_bytes(), b"healthwallet-share/v1\n",
                                     lambda h: h["credential"]["type"].append({"a": 1})))
    result = patient("--home", tmp_path / "research", "research", "ingest", forged, "--k", "1",
                     "--out", tmp_path / "dataset", "--json")
    assert result.code == 1, result
    assert "Traceback" not in result.err
    assert result.json()["rejected"][0]["reason"] == "not-a-share"


@pytest.mark.parametrize("change", [
    lambda h: h.__setitem__("recipients", [1, "x"]),
    lambda h: h.__setitem__("did", 5),
    lambda h: h.__setitem__("created", {"a": 1}),
    lambda h: h["recipients"][0].__setitem__("sealed_key", [1]),
], ids=["recipients_hold_numbers", "did_is_a_number", "created_is_an_object",
        "sealed_key_is_a_list"])
def test_type_confused_backup_header_is_damaged_not_internal_error(
    patient_with_grant: tuple[Cli, Path], tmp_path: Path, change: Any
) -> None:
    patient, _ = patient_with_grant
    backup = tmp_path / "b.hwbackup"
    patient.ok("backup", "--out", backup)
    forged = tmp_path / "forged.hwbackup"
    forged.write_bytes(reframe_bytes(backup.read_bytes(), b"healthwallet-backup/v1\n", change))
    phrase = tmp_path / "phrase.txt"
    phrase.write_text("abandon " * 23 + "art\n")
    result = patient("--home", tmp_path / "restored", "restore", forged, "--phrase-file", phrase,
                     "--keystore", "file")
    assert_documented(result, 1, 2, 4)


@pytest.mark.parametrize("change", [
    lambda d: d.__setitem__("credentialSubject", [1]),
    lambda d: d.__setitem__("type", ["VerifiableCredential", {"a": 1}]),
    lambda d: d["credentialSubject"].__setitem__("encodedList", 12),
    lambda d: d.__setitem__("issuer", {"id": ["x"]}),
], ids=["subject_is_a_list", "object_in_type_list", "encoded_list_is_a_number",
        "issuer_id_is_a_list"])
def test_type_confused_status_list_fails_the_check(
    patient_with_grant: tuple[Cli, Path], tmp_path: Path, change: Any
) -> None:
    patient, grant = patient_with_grant
    patient.ok("status", "publish", "--out", tmp_path / "status")
    document = json.loads((tmp_path / "status" / "1.json").read_bytes())
    change(document)
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    result = patient("verify", grant, "--status-list", forged, "--json")
    assert result.code in (1, 2), result
    assert "Traceback" not in result.err and "internal error" not in result.err


@pytest.mark.parametrize("entry", [5, {"a": 1}, "abc", [1, [2]]],
                         ids=["number", "object", "string", "numbers_and_lists"])
def test_type_confused_fhir_bundle_is_added_or_refused_not_crashed(
    wallet: Cli, tmp_path: Path, entry: Any
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                  "entry": entry}))
    for claimed in ((), ("--type", "fhir")):
        result = wallet("record", "add", bundle, *claimed, "--json")
        assert result.code in (0, 2), result
        assert "Traceback" not in result.err and "internal error" not in result.err
