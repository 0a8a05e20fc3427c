"""The same content added twice is noticed: refused with the existing id, allowed with a flag."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import Cli, fhir_bundle

NAME = "Quixotica"


def _bundle(tmp_path: Path, name: str = "labs.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(fhir_bundle(family=NAME)))
    return path


def test_duplicate_add_is_refused_naming_the_existing_record(wallet: Cli, tmp_path: Path) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    copy = _bundle(tmp_path, "copy-of-labs.json")  # another name, the same bytes
    again = wallet("record", "add", copy)
    assert again.code == 2
    assert again.err.splitlines() == [
        f"error: the file is already in the wallet as record {first}",
        f"hint: see it with `healthwallet record show {first} --summary`; "
        "add it again anyway with --allow-duplicate",
    ]
    assert NAME not in again.err and "labs" not in again.err
    machine = wallet("record", "add", copy, "--json")
    assert machine.code == 2 and json.loads(machine.out)["error"]["exit_code"] == 2
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 1
    assert not list((wallet.home / "blobs").iterdir())[1:], "the refused blob was removed"


def test_duplicate_is_added_with_allow_duplicate_and_says_of_which(
    wallet: Cli, tmp_path: Path
) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    result = wallet.ok("record", "add", _bundle(tmp_path), "--allow-duplicate", "--json")
    second = result.json()["records"][0]
    assert second["duplicate_of"] == first and second["id"] != first
    assert f"holds the same content as record {first}" in result.err
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 2


def test_duplicate_in_a_later_input_stops_with_the_earlier_ones_kept(
    wallet: Cli, tmp_path: Path
) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(fhir_bundle(family="Umbriel")))
    result = wallet("record", "add", other, _bundle(tmp_path))
    assert result.code == 2
    assert f"error: input 2 of 2 is already in the wallet as record {first}" in result.err
    assert "(1 record(s) were added before it)" in result.err
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 2


def test_removed_record_no_longer_counts_as_a_duplicate(wallet: Cli, tmp_path: Path) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    wallet.ok("record", "rm", first)
    wallet.ok("record", "add", _bundle(tmp_path))


def test_content_index_holds_only_keyed_digests(wallet: Cli, tmp_path: Path) -> None:
    import hashlib

    source = _bundle(tmp_path)
    wallet.ok("record", "add", source)
    db = sqlite3.connect(wallet.home / "vault.sqlite")
    try:
        tags = [bytes(row[0]) for row in db.execute("SELECT tag FROM content_index")]
    finally:
        db.close()
    content = source.read_bytes()
    bare = {hashlib.sha256(content).digest(), hashlib.blake2b(content, digest_size=32).digest()}
    assert len(tags) == 1 and tags[0] not in bare and len(tags[0]) == 32


def test_wallet_without_the_index_is_indexed_lazily_then_checked(
    wallet: Cli, tmp_path: Path
) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    db = sqlite3.connect(wallet.home / "vault.sqlite")  # a wallet from before the index
    with db:
        db.execute("DROP TABLE content_index")
    db.close()
    again = wallet("record", "add", _bundle(tmp_path))
    assert again.code == 2 and f"as record {first}" in again.err


def test_doctor_indexes_what_record_add_left_for_it(wallet: Cli, tmp_path: Path) -> None:
    import healthwallet.dedupe as dedupe

    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (dedupe.CATCH_UP_BYTES + 1))
    first = wallet.ok("record", "add", big, "--json").json()["records"][0]["id"]
    db = sqlite3.connect(wallet.home / "vault.sqlite")
    with db:
        db.execute("DELETE FROM content_index")
    db.close()
    later = wallet.ok("record", "add", _bundle(tmp_path))
    assert "warning: 1 older record(s) are not checked for duplicates yet" in later.err
    assert "`healthwallet doctor` indexes them" in later.err
    wallet.ok("doctor")
    again = wallet("record", "add", big)
    assert again.code == 2 and f"as record {first}" in again.err


def test_duplicate_is_still_noticed_after_a_key_rotation(wallet: Cli, tmp_path: Path) -> None:
    first = wallet.ok("record", "add", _bundle(tmp_path), "--json").json()["records"][0]["id"]
    wallet.ok("key", "rotate", "--json")
    again = wallet("record", "add", _bundle(tmp_path))  # the index is rebuilt under the new key
    assert again.code == 2 and f"as record {first}" in again.err
    assert "older record(s)" not in again.err
