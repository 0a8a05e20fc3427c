"""Transcripts of the recovery phrase: `key export --phrase` and `init --from-phrase`."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Cli, fhir_bundle
from mnemonic import Mnemonic

from healthwallet.cli._keys import PHRASE_WARNING
from healthwallet.errors import UsageError
from healthwallet.keys import Identity
from healthwallet.recovery import phrase_from_seed, seed_from_phrase

WORDS = set(Mnemonic("english").wordlist)

# BIP-39 reference vectors (the 256-bit entropy ones from the BIP's test vector file).
BIP39_VECTORS = [
    ("00" * 32, " ".join(["abandon"] * 23 + ["art"])),
    ("7f" * 32, "legal winner thank year wave sausage worth useful legal winner thank year wave "
                "sausage worth useful legal winner thank year wave sausage worth title"),
    ("80" * 32, "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd "
                "amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless"),
    ("ff" * 32, " ".join(["zoo"] * 23 + ["vote"])),
]


def _phrase(wallet: Cli) -> str:
    return wallet.ok("key", "export", "--phrase", "--show-secret", "--json").json()["phrase"]


def _all_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


@pytest.mark.parametrize(("entropy", "words"), BIP39_VECTORS)
def test_phrase_is_the_bip39_mnemonic_of_the_seed(entropy: str, words: str) -> None:
    seed = bytes.fromhex(entropy)
    assert phrase_from_seed(seed) == words
    assert seed_from_phrase(words) == seed
    # what a person types: any case, line breaks, the numbering `key export` prints
    numbered = "\n".join(f"{i}. {w.upper()}" for i, w in enumerate(words.split(), 1))
    assert seed_from_phrase(numbered) == seed


def test_export_then_init_from_phrase_recreates_the_same_did_and_vault_key(
    wallet: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "labs.json"
    source.write_text(str(fhir_bundle()).replace("'", '"'))
    record_id = wallet.ok("record", "add", source, "--json").json()["records"][0]["id"]
    did = wallet.ok("id").out.strip()

    phrase = _phrase(wallet)
    assert phrase == " ".join(phrase.split()) and len(phrase.split()) == 24
    assert set(phrase.split()) <= WORDS

    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(phrase + "\n")
    other = Cli(tmp_path / "again", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "again")))
    created = other.ok("init", "--from-phrase", "--phrase-file", phrase_file, "--keystore", "file",
                       "--json").json()
    assert created["did"] == did
    assert other.ok("id").out.strip() == did
    # Same vault key: the first wallet's index and blobs open in the recreated wallet.
    shutil.copy(wallet.home / "vault.sqlite", other.home / "vault.sqlite")
    shutil.copytree(wallet.home / "blobs", other.home / "blobs", dirs_exist_ok=True)
    out = tmp_path / "back.json"
    other.ok("record", "show", record_id, "--out", out)
    assert out.read_bytes() == source.read_bytes()
    # --phrase-file alone implies --from-phrase; the phrase is never stored in the clear
    third = Cli(tmp_path / "third", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "third")))
    assert third.ok("init", "--phrase-file", phrase_file, "--keystore", "file",
                    "--json").json()["did"] == did
    seed = seed_from_phrase(phrase)
    for home in (other.home, third.home):
        content = _all_bytes(home)
        assert phrase.encode() not in content and seed.hex().encode() not in content
        assert seed not in content


def test_human_export_warns_first_and_its_printout_restores(wallet: Cli, tmp_path: Path) -> None:
    result = wallet.ok("key", "export", "--phrase")
    assert result.err.startswith("WARNING: these 24 words ARE your wallet identity")
    phrase = _phrase(wallet).split()
    shown = [t for t in result.out.split() if t in WORDS]
    assert shown[:24] == phrase
    # stderr holds the warning and the DID, not a word of the phrase
    assert result.err == PHRASE_WARNING + "\n" + f"DID: {wallet.ok('id').out.strip()}\n"
    printout = tmp_path / "paper.txt"
    printout.write_text("\n".join(result.out.splitlines()[:6]))  # the six numbered rows
    other = Cli(tmp_path / "b", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "b")))
    assert other.ok("init", "--phrase-file", printout, "--keystore", "file",
                    "--json").json()["did"] == wallet.ok("id").out.strip()


def test_json_export_refuses_without_show_secret(wallet: Cli) -> None:
    assert len(_phrase(wallet).split()) == 24  # there is a phrase it could leak
    result = wallet("key", "export", "--phrase", "--json")
    # exactly the refusal, on both streams: no word of the phrase anywhere
    message = "--json would put the recovery phrase in machine output; refused"
    hint = "add --show-secret if you really want it there"
    assert result.code == 2
    assert result.json() == {"error": {"message": message, "hint": hint, "exit_code": 2}}
    assert result.err == f"error: {message}\nhint: {hint}\n"
    assert wallet("key", "export").code == 2  # nothing asked for


def test_export_needs_the_passphrase(wallet: Cli) -> None:
    result = wallet("key", "export", "--phrase", env={"HEALTHWALLET_PASSPHRASE": "wrong"})
    assert result.code == 4
    assert not set(result.out.split()) & WORDS


@pytest.mark.parametrize("damage", ["short", "unknown-word", "swapped", "checksum"])
def test_a_bad_phrase_is_refused_without_quoting_it(cli: Cli, tmp_path: Path, damage: str) -> None:
    # A fixed seed: with a random one, a swap or a new last word keeps the 8-bit checksum valid
    # once in 256 runs, and the damaged phrase is then simply another identity.
    words = phrase_from_seed(hashlib.sha256(b"a phrase to damage").digest()).split()
    if damage == "short":
        words = words[:23]
        expected = "has 23"
    elif damage == "unknown-word":
        words[4] = "zyzzyva"
        expected = "word 5 of the recovery phrase is not a BIP-39 word"
    elif damage == "swapped":
        i = next(i for i in range(23) if words[i] != words[i + 1])
        words[i], words[i + 1] = words[i + 1], words[i]
        expected = "checksum"
    else:
        words[-1] = next(w for w in ("abandon", "ability") if w != words[-1])
        expected = "checksum"
    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(" ".join(words))
    result = cli("init", "--from-phrase", "--phrase-file", phrase_file, "--keystore", "file")
    assert result.code == 2, result
    assert expected in result.err
    assert "zyzzyva" not in result.err
    assert not any(f"{a} {b}" in result.err for a, b in itertools.pairwise(words))
    assert not cli.home.exists() or not (cli.home / "wallet.json").exists()


def test_from_phrase_without_terminal_or_file_fails_and_creates_nothing(cli: Cli) -> None:
    proc = subprocess.run([sys.executable, "-m", "healthwallet", "init", "--from-phrase",
                           "--keystore", "file"], env=cli.env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 2
    assert b"--phrase-file" in proc.stderr
    assert not (cli.home / "wallet.json").exists()
    missing = cli("init", "--phrase-file", cli.home.parent / "nope.txt", "--keystore", "file")
    assert missing.code == 3


def test_from_phrase_prompt_on_a_terminal_hides_the_words(cli: Cli) -> None:
    import pty

    phrase = BIP39_VECTORS[1][1]
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(sys.executable, [sys.executable, "-m", "healthwallet", "init", "--from-phrase",
                                   "--keystore", "file"], cli.env)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        deadline = time.time() + 30
        while marker not in output and time.time() < deadline:
            try:
                output += os.read(fd, 1024)
            except OSError:
                break

    read_until(b"Recovery phrase")
    os.write(fd, phrase.encode() + b"\n")
    read_until(b"Your DID")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b"legal winner" not in output  # not echoed
    assert cli.ok("id").out.strip() == Identity(bytes.fromhex("7f" * 32)).did


def test_init_from_phrase_refuses_an_existing_wallet(wallet: Cli, tmp_path: Path) -> None:
    phrase_file = tmp_path / "p.txt"
    phrase_file.write_text(BIP39_VECTORS[0][1])
    did = wallet.ok("id").out.strip()
    result = wallet("init", "--from-phrase", "--phrase-file", phrase_file, "--keystore", "file")
    assert result.code == 2 and "already exists" in result.err
    assert wallet.ok("id").out.strip() == did


def test_seed_from_phrase_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        seed_from_phrase("")
    with pytest.raises(ValueError):
        phrase_from_seed(b"short")


def test_documented_export_redirected_to_a_file_reads_back_byte_for_byte(
    wallet: Cli, tmp_path: Path
) -> None:
    """docs/cli.md: `key export --phrase > phrase.txt`, then `init`/`restore --phrase-file`."""
    did = wallet.ok("id").out.strip()
    phrase_file = tmp_path / "phrase.txt"
    with phrase_file.open("wb") as stdout:
        proc = subprocess.run([sys.executable, "-m", "healthwallet", "key", "export", "--phrase"],
                              stdout=stdout, stderr=subprocess.PIPE, env=wallet.env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"DID:" not in phrase_file.read_bytes() and f"DID: {did}".encode() in proc.stderr
    backup = tmp_path / "wallet.hwbackup"
    wallet.ok("backup", "--out", backup)

    fresh = Cli(tmp_path / "new", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "new")))
    assert fresh.ok("init", "--phrase-file", phrase_file, "--keystore", "file",
                    "--json").json()["did"] == did
    restored = Cli(tmp_path / "r", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "r")))
    restored.ok("restore", backup, "--phrase-file", phrase_file, "--keystore", "file")
    assert restored.ok("id").out.strip() == did
