"""Transcripts of `backup` and `restore`: round trips, refusals, damage, merge, and secrecy."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import Cli, fhir_bundle

from healthwallet.recovery import seed_from_phrase

BACKUP_PASSPHRASE = "ferry lantern quartz 1961"
KEYSTORE_PASSPHRASE = "correct horse battery staple"
MARKER = b"PLAINTEXT-MARKER-7f3a"  # appears in record content; must never be in a backup


def _phrase(wallet: Cli, tmp_path: Path) -> Path:
    phrase = wallet.ok("key", "export", "--phrase", "--show-secret", "--json").json()["phrase"]
    path = tmp_path / f"phrase-{hashlib.sha256(phrase.encode()).hexdigest()[:8]}.txt"
    path.write_text(phrase + "\n")
    return path


def _other(cli: Cli, home: Path, **env: str) -> Cli:
    return Cli(home, dict(cli.env, HEALTHWALLET_HOME=str(home), **env))


def _populate(wallet: Cli, tmp_path: Path) -> dict[str, bytes]:
    """Records of each kind, plus the files other parts keep in the wallet home."""
    files = {
        "labs.json": json.dumps(fhir_bundle()).encode(),
        "scan.pdf": b"%PDF-1.7\n" + MARKER + os.urandom(300_000),
        "empty.bin": b"",
        "note.txt": b"free text " + MARKER,
    }
    paths = []
    for name, content in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(content)
    added = wallet.ok("record", "add", *paths, "--tag", "t1", "--json").json()["records"]
    contents = {r["id"]: p.read_bytes() for r, p in zip(added, paths, strict=True)}
    wallet.ok("config", "set", "max-expiry-days", "30")
    home = wallet.home
    (home / "status").mkdir(mode=0o700)
    (home / "status" / "1.json").write_text('{"type": ["VerifiableCredential"]}')
    (home / "audit.log").write_text('{"seq": 1}\n{"seq": 2}\n')
    anchors = sqlite3.connect(home / "anchors.sqlite")
    anchors.execute("CREATE TABLE roots (root TEXT)")
    anchors.execute("INSERT INTO roots VALUES ('ab')")
    anchors.commit()
    anchors.close()
    return contents


def _wal_rows(home: Path) -> sqlite3.Connection:
    """grants.sqlite in WAL mode with rows only in the WAL (the connection stays open)."""
    db = sqlite3.connect(home / "grants.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE grants (grant_id TEXT)")
    db.executemany("INSERT INTO grants VALUES (?)", [(f"g{i}",) for i in range(50)])
    assert (home / "grants.sqlite-wal").stat().st_size > 0
    return db


def _check_records(wallet: Cli, contents: dict[str, bytes], tmp_path: Path) -> None:
    listed = {r["id"] for r in wallet.ok("record", "list", "--json").json()["records"]}
    assert listed == set(contents)
    for record_id, content in contents.items():
        out = tmp_path / "roundtrip"
        wallet.ok("record", "show", record_id, "--out", out)
        assert out.read_bytes() == content


def _tree(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file()}


def test_backup_and_restore_with_the_phrase_round_trip_everything(
    wallet: Cli, tmp_path: Path
) -> None:
    contents = _populate(wallet, tmp_path)
    db = _wal_rows(wallet.home)
    phrase_file = _phrase(wallet, tmp_path)
    did = wallet.ok("id").out.strip()
    out = tmp_path / "wallet.hwbackup"
    made = wallet.ok("backup", "--out", out, "--json").json()
    db.close()
    assert made["file"] == str(out) and made["records"] == 4
    assert made["bytes"] == out.stat().st_size
    assert stat_mode(out) == 0o600

    target = _other(wallet, tmp_path / "new-machine" / "wallet",
                    HEALTHWALLET_PASSPHRASE="a different passphrase")
    restored = target.ok("restore", out, "--phrase-file", phrase_file, "--keystore", "file",
                         "--json").json()
    assert restored == {"home": str(target.home), "did": did, "records": 4, "added": 4,
                        "skipped": 0, "merged": False}
    doctor = target.ok("doctor", "--json").json()
    assert doctor["ok"] is True and doctor["records"] == 4
    _check_records(target, contents, tmp_path)
    assert target.ok("id").out.strip() == did
    assert target.ok("config", "get", "max-expiry-days").out.strip() == "30"
    # every other file came along; the consistent snapshot includes rows only in the WAL
    original, copy = _tree(wallet.home), _tree(target.home)
    for name in ("status/1.json", "audit.log", "config.json"):
        assert copy[name] == original[name]
    grants = sqlite3.connect(target.home / "grants.sqlite")
    assert grants.execute("SELECT COUNT(*) FROM grants").fetchone() == (50,)
    assert sqlite3.connect(target.home / "anchors.sqlite").execute(
        "SELECT root FROM roots").fetchall() == [("ab",)]
    # the keystore is new (the restored one has its own passphrase), locks are not copied
    assert copy["identity.key"] != original["identity.key"]
    assert target("record", "list", env={"HEALTHWALLET_PASSPHRASE": KEYSTORE_PASSPHRASE}).code == 4
    restored_info = json.loads(copy["wallet.json"])
    assert restored_info["did"] == did
    assert restored_info["wallet_id"] != json.loads(original["wallet.json"])["wallet_id"]
    for path in target.home.rglob("*"):
        assert stat_mode(path) == (0o700 if path.is_dir() else 0o600), path
    # nothing was left beside the target
    assert [p.name for p in target.home.parent.iterdir()] == ["wallet"]


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_backup_file_holds_no_secret_and_no_plaintext(wallet: Cli, tmp_path: Path) -> None:
    _populate(wallet, tmp_path)
    phrase_file = _phrase(wallet, tmp_path)
    phrase = phrase_file.read_text().strip()
    seed = seed_from_phrase(phrase)
    out = tmp_path / "b.hwbackup"
    result = wallet.ok("backup", "--out", out, "--passphrase", "--json",
                       env={"HEALTHWALLET_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE})
    blob = out.read_bytes()
    for secret in (seed, seed.hex().encode(), phrase.encode(), BACKUP_PASSPHRASE.encode(),
                   KEYSTORE_PASSPHRASE.encode(), MARKER, b"Quixotica", b"hemoglobin"):
        assert secret not in blob
        assert secret.decode(errors="ignore") not in result.out + result.err
    assert blob.startswith(b"healthwallet-backup/v1\n")
    # the restore output and the restored files hold no secret either
    target = _other(wallet, tmp_path / "r")
    restored = target.ok("restore", out, "--keystore", "file", "--json",
                         env={"HEALTHWALLET_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE})
    for secret in (phrase, seed.hex(), BACKUP_PASSPHRASE):
        assert secret not in restored.out + restored.err
    everything = b"".join(_tree(target.home).values())
    for secret in (seed, seed.hex().encode(), phrase.encode(), BACKUP_PASSPHRASE.encode(), MARKER):
        assert secret not in everything


def test_restore_with_the_backup_passphrase(wallet: Cli, tmp_path: Path) -> None:
    contents = _populate(wallet, tmp_path)
    did = wallet.ok("id").out.strip()
    pass_file = tmp_path / "bp.txt"
    pass_file.write_text(BACKUP_PASSPHRASE + "\n")
    out = tmp_path / "b.hwbackup"
    made = wallet.ok("backup", "--out", out, "--backup-passphrase-file", pass_file, "--json")
    assert made.json()["passphrase"] is True
    target = _other(wallet, tmp_path / "r")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    failed = target("restore", out, "--backup-passphrase-file", wrong, "--keystore", "file")
    assert failed.code == 4 and failed.err.startswith("error: wrong backup passphrase")
    assert not target.home.exists()
    restored = target.ok("restore", out, "--keystore", "file", "--json",
                         env={"HEALTHWALLET_BACKUP_PASSPHRASE": BACKUP_PASSPHRASE}).json()
    assert restored["did"] == did and restored["records"] == 4
    _check_records(target, contents, tmp_path)
    assert target.ok("doctor", "--json").json()["ok"] is True
    # the phrase still opens a backup that also has a passphrase
    second = _other(wallet, tmp_path / "r2")
    second.ok("restore", out, "--phrase-file", _phrase(wallet, tmp_path), "--keystore", "file")


def test_restore_refusals_change_nothing(wallet: Cli, tmp_path: Path) -> None:
    _populate(wallet, tmp_path)
    phrase_file = _phrase(wallet, tmp_path)
    out = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", out)
    before = _tree(wallet.home)
    # over an existing wallet
    over = wallet("restore", out, "--phrase-file", phrase_file, "--keystore", "file")
    assert over.code == 2 and "already exists" in over.err and "--merge" in over.err
    assert _tree(wallet.home) == before
    # into a non-empty directory that is not a wallet
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = _other(wallet, busy)("restore", out, "--phrase-file", phrase_file)
    assert result.code == 2 and (busy / "keep.txt").read_text() == "mine"
    # another identity's phrase: exit 4
    stranger = _other(wallet, tmp_path / "stranger")
    stranger.ok("init", "--keystore", "file")
    foreign = _other(wallet, tmp_path / "r")("restore", out, "--phrase-file",
                                             _phrase(stranger, tmp_path), "--keystore", "file")
    assert foreign.code == 4 and "another identity" in foreign.err
    # no passphrase in this backup
    nopass = _other(wallet, tmp_path / "r")("restore", out, "--keystore", "file",
                                            env={"HEALTHWALLET_BACKUP_PASSPHRASE": "x"})
    assert nopass.code == 4 and "no passphrase" in nopass.err
    # no secret at all and no terminal
    proc = subprocess.run([sys.executable, "-m", "healthwallet", "restore", str(out)],
                          env=dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "r")),
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 4 and b"--phrase-file" in proc.stderr
    assert not (tmp_path / "r").exists()
    missing = _other(wallet, tmp_path / "r")("restore", tmp_path / "nope.hwbackup",
                                             "--phrase-file", phrase_file)
    assert missing.code == 3
    # an empty directory is a fine target
    empty = tmp_path / "empty"
    empty.mkdir()
    _other(wallet, empty).ok("restore", out, "--phrase-file", phrase_file, "--keystore", "file")
    assert (empty / "wallet.json").exists()


def _damaged_variants(blob: bytes) -> dict[str, bytes]:
    header_end = 23 + 4 + int.from_bytes(blob[23:27], "big")
    flip = lambda at: blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1:]  # noqa: E731
    return {
        "empty": b"",
        "magic": flip(3),
        "cut-in-header": blob[: header_end - 10],
        "header-json": flip(header_end - 40),
        "cut-after-header": blob[:header_end],
        "flip-stream-start": flip(header_end + 30),
        "flip-middle": flip(len(blob) // 2),
        "flip-last": flip(len(blob) - 1),
        "cut-middle": blob[: len(blob) // 2],
        "cut-chunk-boundary": blob[: header_end + 24 + 65536 + 17],
        "cut-last-byte": blob[:-1],
        "extra-byte": blob + b"\0",
    }


def test_a_damaged_or_truncated_backup_is_reported_and_touches_nothing(
    wallet: Cli, tmp_path: Path
) -> None:
    _populate(wallet, tmp_path)
    phrase_file = _phrase(wallet, tmp_path)
    out = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", out)
    blob = out.read_bytes()
    assert len(blob) > 3 * 65536
    before = _tree(wallet.home)
    target_parent = tmp_path / "targets"
    target_parent.mkdir()
    for position, (name, damaged) in enumerate(_damaged_variants(blob).items()):
        path = tmp_path / f"{name}.hwbackup"
        path.write_bytes(damaged)
        target = _other(wallet, target_parent / name)
        result = target("restore", path, "--phrase-file", phrase_file, "--keystore", "file")
        assert result.code == 1, (name, result)
        assert result.err.startswith("error: "), name
        assert "Traceback" not in result.err
        assert list(target_parent.iterdir()) == [], name  # no wallet, no temp dir
        if position % 3 == 0:  # over an existing wallet (--merge) too, for a few of them
            merged = wallet("restore", path, "--merge", "--phrase-file", phrase_file)
            assert merged.code == 1, (name, merged)
        assert _tree(wallet.home) == before, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_a_forged_header_is_refused(wallet: Cli, tmp_path: Path) -> None:
    phrase_file = _phrase(wallet, tmp_path)
    out = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", out)
    blob = out.read_bytes()
    length = int.from_bytes(blob[23:27], "big")
    header = json.loads(blob[27:27 + length])
    header["created"] = "2020-01-01T00:00:00+00:00"
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    forged = tmp_path / "forged.hwbackup"
    forged.write_bytes(blob[:23] + len(raw).to_bytes(4, "big") + raw + blob[27 + length:])
    result = _other(wallet, tmp_path / "r")("restore", forged, "--phrase-file", phrase_file)
    assert result.code == 1 and "not signed by its identity" in result.err
    assert not (tmp_path / "r").exists()


def test_merge_adds_missing_records_and_leaves_the_rest(wallet: Cli, tmp_path: Path) -> None:
    contents = _populate(wallet, tmp_path)
    phrase_file = _phrase(wallet, tmp_path)
    out = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", out)
    # another wallet (another identity) with its own record
    other = _other(wallet, tmp_path / "other")
    other.ok("init", "--keystore", "file")
    own = tmp_path / "own.txt"
    own.write_bytes(b"the other wallet's own record")
    own_id = other.ok("record", "add", own, "--json").json()["records"][0]["id"]
    other_did = other.ok("id").out.strip()
    merged = other.ok("restore", out, "--merge", "--phrase-file", phrase_file, "--json").json()
    assert merged == {"home": str(other.home), "did": other_did, "records": 5, "added": 4,
                      "skipped": 0, "merged": True}
    _check_records(other, {**contents, own_id: own.read_bytes()}, tmp_path)
    assert other.ok("doctor", "--json").json()["ok"] is True
    again = other.ok("restore", out, "--merge", "--phrase-file", phrase_file, "--json").json()
    assert (again["added"], again["skipped"], again["records"]) == (0, 4, 5)
    # into the same wallet: only what was removed comes back
    gone = next(iter(contents))
    wallet.ok("record", "rm", gone)
    back = wallet.ok("restore", out, "--merge", "--phrase-file", phrase_file, "--json").json()
    assert (back["added"], back["skipped"]) == (1, 3)
    _check_records(wallet, contents, tmp_path)
    # --merge needs a wallet there
    nowhere = _other(wallet, tmp_path / "nowhere")("restore", out, "--merge", "--phrase-file",
                                                   phrase_file)
    assert nowhere.code == 3


def test_backup_refusals(wallet: Cli, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "b.hwbackup"
    wallet.ok("backup", "--out", out)
    first = out.read_bytes()
    exists = wallet("backup", "--out", out)
    assert exists.code == 2 and "--force" in exists.err
    assert out.read_bytes() == first
    wallet.ok("backup", "--out", out, "--force")
    assert out.read_bytes() != first
    inside = wallet("backup", "--out", wallet.home / "b.hwbackup")
    assert inside.code == 2 and not (wallet.home / "b.hwbackup").exists()
    assert wallet("backup", "--out", tmp_path / "no" / "dir" / "b").code == 3
    nopass = subprocess.run([sys.executable, "-m", "healthwallet", "backup", "--out",
                             str(tmp_path / "c"), "--passphrase"], env=wallet.env,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert nopass.returncode == 4 and b"HEALTHWALLET_BACKUP_PASSPHRASE" in nopass.stderr
    assert not (tmp_path / "c").exists()
    assert wallet("backup", "--out", tmp_path / "d",
                  env={"HEALTHWALLET_PASSPHRASE": "wrong"}).code == 4
    no_wallet = _other(wallet, tmp_path / "none")("backup", "--out", tmp_path / "e")
    assert no_wallet.code == 3
    # nothing was left behind in the wallet home or beside the output
    assert not [p for p in wallet.home.iterdir() if p.name.startswith(".tmp")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_backup_while_records_are_being_added_is_consistent(wallet: Cli, tmp_path: Path) -> None:
    phrase_file = _phrase(wallet, tmp_path)
    sources = []
    for i in range(12):
        path = tmp_path / f"w{i}.pdf"
        path.write_bytes(b"%PDF-1.4\n" + os.urandom(200_000 + i))
        sources.append(path)
    adder = subprocess.Popen([sys.executable, "-m", "healthwallet", "record", "add", *map(str, sources)],
                             env=wallet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    backups = []
    for i in range(2):
        time.sleep(0.4)
        out = tmp_path / f"b{i}.hwbackup"
        wallet.ok("backup", "--out", out)
        backups.append(out)
    adder.communicate(timeout=120)
    assert adder.returncode == 0
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    for i, out in enumerate(backups):
        target = _other(wallet, tmp_path / f"r{i}")
        restored = target.ok("restore", out, "--phrase-file", phrase_file, "--keystore", "file",
                             "--json").json()
        assert target.ok("doctor", "--json").json()["ok"] is True
        ids = [r["id"] for r in target.ok("record", "list", "--json").json()["records"]]
        assert len(ids) == restored["records"]
        for record_id in ids[:4]:
            check = tmp_path / "check"
            target.ok("record", "show", record_id, "--out", check)
            assert hashlib.sha256(check.read_bytes()).hexdigest() in digests


def test_restore_then_backup_again_round_trips(wallet: Cli, tmp_path: Path) -> None:
    contents = _populate(wallet, tmp_path)
    phrase_file = _phrase(wallet, tmp_path)
    out = tmp_path / "one.hwbackup"
    wallet.ok("backup", "--out", out)
    first = _other(wallet, tmp_path / "first")
    first.ok("restore", out, "--phrase-file", phrase_file, "--keystore", "file")
    out2 = tmp_path / "two.hwbackup"
    first.ok("backup", "--out", out2)
    second = _other(wallet, tmp_path / "second")
    second.ok("restore", out2, "--phrase-file", phrase_file, "--keystore", "file")
    _check_records(second, contents, tmp_path)
