"""Transcripts of `key rotate`: new DID, records kept, history, retired keys, crash safety."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli
from local_status import status_path, typing_status_lists

from healthwallet.keys import Identity, ed25519_from_did, verify_signature
from healthwallet.rotation import identity_for_did, identity_history, retired_identities
from healthwallet.unlock import open_wallet
from healthwallet.vault import Vault
from healthwallet.wallet import read_info

PASSPHRASE = "correct horse battery staple"
DOCTOR = Identity(hashlib.sha256(b"rotation-test-doctor").digest())
PRE_COMMIT = ("marker", "pending", "retired", "rewrap-batch")
POST_COMMIT = ("rewrap", "retired-renamed", "wallet-json", "keystore")


def _add_records(wallet: Cli, tmp_path: Path, count: int, seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    folder = tmp_path / f"records-{seed}"
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"r{i:04d}.bin"
        path.write_bytes(rng.randbytes(rng.randint(0, 3000)))
        paths.append(path)
    added = wallet.ok("record", "add", *paths, "--json").json()["records"]
    return {r["id"]: p.read_bytes() for r, p in zip(added, paths, strict=True)}


def _contents(home: Path) -> dict[str, bytes]:
    """Every record's bytes, read in-process (after the CLI has opened the wallet)."""
    wallet = open_wallet(home, lambda _: PASSPHRASE)
    vault = Vault(home, wallet.identity.vault_key)
    try:
        out = {}
        for record in vault.records():
            buffer = io.BytesIO()
            vault.read_into(record.id, buffer)
            out[record.id] = buffer.getvalue()
        return out
    finally:
        vault.close()


def _leftovers(home: Path) -> list[str]:
    # A kill while the marker itself is being written can leave its temp file (public
    # content, no secret) with no marker; the next rotation removes it. Anything else is a bug.
    # .tmp-staging/ and .tmp-outputs/ are the safe writer's folders: leftovers only when not empty.
    return sorted(p.name for p in home.iterdir()
                  if p.name in ("rotation.json", "identity.key.pending", "retired-keys.next")
                  or (p.name.startswith(".tmp-") and not p.name.startswith(".tmp-rotation.json-")
                      and not (p.name in (".tmp-staging", ".tmp-outputs")
                               and not any(p.iterdir()))))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A wallet with 501 records (two re-wrap batches), made once and copied per test."""
    from conftest import base_env

    root = tmp_path_factory.mktemp("template")
    env = base_env(root)
    env.update(HEALTHWALLET_HOME=str(root / "wallet"), HEALTHWALLET_PASSPHRASE=PASSPHRASE)
    maker = Cli(root / "wallet", env)
    maker.ok("init", "--keystore", "file")
    return maker.home, _add_records(maker, root, 501)


def _from_template(wallet: Cli, template: tuple[Path, dict[str, bytes]]) -> dict[str, bytes]:
    shutil.rmtree(wallet.home)
    shutil.copytree(template[0], wallet.home)
    return dict(template[1])


def _did(wallet: Cli) -> str:
    return wallet.ok("id").out.strip()


def test_rotate_gives_a_new_did_and_keeps_every_record(wallet: Cli, tmp_path: Path) -> None:
    records = _add_records(wallet, tmp_path, 12)
    old_did = _did(wallet)
    old_phrase = wallet.ok("key", "export", "--phrase", "--show-secret", "--json").json()["phrase"]
    result = wallet.ok("key", "rotate", "--json")
    payload = result.json()
    assert payload["old_did"] == old_did
    assert payload["new_did"] != old_did and payload["new_did"].startswith("did:key:z6Mk")
    assert payload["records"] == 12
    assert "recovery phrase has changed" in result.err
    assert _did(wallet) == payload["new_did"]
    assert wallet.ok("doctor", "--json").json()["ok"] is True
    assert _contents(wallet.home) == records
    for record_id in list(records)[:2]:
        out = tmp_path / "out"
        wallet.ok("record", "show", record_id, "--out", out)
        assert out.read_bytes() == records[record_id]
    # the phrase changed with the key; the new phrase recreates the new DID
    new_phrase = wallet.ok("key", "export", "--phrase", "--show-secret", "--json").json()["phrase"]
    assert new_phrase != old_phrase
    phrase_file = tmp_path / "new.txt"
    phrase_file.write_text(new_phrase)
    other = Cli(tmp_path / "o", dict(wallet.env, HEALTHWALLET_HOME=str(tmp_path / "o")))
    assert other.ok("init", "--phrase-file", phrase_file, "--keystore", "file",
                    "--json").json()["did"] == payload["new_did"]
    # no secret in plaintext anywhere in the home
    blob = b"".join(p.read_bytes() for p in wallet.home.rglob("*") if p.is_file())
    old_wallet_seed = None
    for identity in retired_identities(open_wallet(wallet.home, lambda _: PASSPHRASE)):
        old_wallet_seed = identity.seed
    assert old_wallet_seed is not None
    for secret in (old_wallet_seed, old_wallet_seed.hex().encode(), new_phrase.encode(),
                   old_phrase.encode(), PASSPHRASE.encode()):
        assert secret not in blob
    assert _leftovers(wallet.home) == []


def test_history_links_each_old_did_to_the_next_signed_by_both(wallet: Cli) -> None:
    first = _did(wallet)
    assert wallet.ok("id", "--history", "--json").json() == {"did": first, "history": []}
    second = wallet.ok("key", "rotate", "--json").json()["new_did"]
    third = wallet.ok("key", "rotate", "--json").json()["new_did"]
    shown = wallet.ok("id", "--history", "--json").json()
    assert shown["did"] == third
    assert [(h["old_did"], h["new_did"], h["verified"]) for h in shown["history"]] == [
        (first, second, True), (second, third, True)]
    human = wallet.ok("id", "--history").out
    assert human.count("signed by both keys") == 2
    # the statements themselves carry both signatures over the same message
    info = json.loads((wallet.home / "wallet.json").read_text())
    for statement in info["history"]:
        assert set(statement) >= {"old_did", "new_did", "rotated", "old_signature",
                                  "new_signature"}
    # retired identities: oldest first, each recoverable by DID, each still able to sign
    opened = open_wallet(wallet.home, lambda _: PASSPHRASE)
    assert [i.did for i in retired_identities(opened)] == [first, second]
    old = identity_for_did(opened, first)
    assert verify_signature(ed25519_from_did(first), b"m", old.sign(b"m"))
    assert identity_for_did(opened, third) is opened.identity
    # a changed statement is caught: exit 1 and "NOT VERIFIED"
    info["history"][0]["rotated"] = "2001-01-01T00:00:00+00:00"
    (wallet.home / "wallet.json").write_text(json.dumps(info))
    tampered = wallet("id", "--history", "--json")
    assert tampered.code == 1
    assert [h["verified"] for h in tampered.json()["history"]] == [False, True]
    assert "NOT VERIFIED" in wallet("id", "--history").out


def test_grants_issued_before_a_rotation_still_verify_and_can_be_revoked(
    wallet: Cli, tmp_path: Path
) -> None:
    from healthwallet.grants import GrantRecord, verify_grant
    from healthwallet.issued import IssuedGrants

    before = open_wallet(wallet.home, lambda _: PASSPHRASE)
    content = b'{"resourceType": "Observation"}'
    salt = bytes(32)

    @contextmanager
    def opener():  # type: ignore[no-untyped-def]
        yield io.BytesIO(content)

    record = GrantRecord(id="00112233aabbccdd", media_type="application/fhir+json",
                         name="obs.json", salt=salt,
                         commitment=hashlib.sha256(salt + content).hexdigest(),
                         size=len(content), open=opener)
    grant = io.BytesIO()
    summary = IssuedGrants(before.home, before.identity).issue(
        grant, [record], DOCTOR.did, purpose="follow-up",
        expires=datetime.now(UTC) + timedelta(days=7))
    wallet.ok("key", "rotate")
    after = open_wallet(wallet.home, lambda _: PASSPHRASE)
    assert after.did != before.did
    listed = status_path(grant.getvalue())  # the list as a doctor types it
    verdict = verify_grant(io.BytesIO(grant.getvalue()), recipient_did=DOCTOR.did,
                           status_source=listed)
    assert verdict.valid, verdict.to_json()
    assert verdict.issuer == before.did
    # the old DID's status list is signed with the retired key, so the grant can be revoked
    IssuedGrants(after.home, identity_for_did(after, before.did)).revoke(summary["grant_id"])
    revoked = verify_grant(io.BytesIO(grant.getvalue()), recipient_did=DOCTOR.did,
                           status_source=listed)
    assert not revoked.valid
    status = revoked.check("status")
    assert status is not None and not status.ok


def test_rotation_needs_the_passphrase_and_changes_nothing_without_it(wallet: Cli) -> None:
    did = _did(wallet)
    result = wallet("key", "rotate", env={"HEALTHWALLET_PASSPHRASE": "wrong"})
    assert result.code == 4
    assert _did(wallet) == did and _leftovers(wallet.home) == []
    missing = Cli(wallet.home.parent / "none",
                  dict(wallet.env, HEALTHWALLET_HOME=str(wallet.home.parent / "none")))
    assert missing("key", "rotate").code == 3


def test_a_damaged_record_key_stops_the_rotation_with_nothing_changed(
    wallet: Cli, tmp_path: Path
) -> None:
    import sqlite3

    records = _add_records(wallet, tmp_path, 3)
    did = _did(wallet)
    db = sqlite3.connect(wallet.home / "vault.sqlite")
    victim = next(iter(records))
    wrapped = db.execute("SELECT wrapped_key FROM records WHERE id=?", (victim,)).fetchone()[0]
    db.execute("UPDATE records SET wrapped_key=? WHERE id=?",
               (wrapped[:-1] + bytes([wrapped[-1] ^ 1]), victim))
    db.commit()
    db.close()
    result = wallet("key", "rotate")
    assert result.code == 1 and victim in result.err
    assert _did(wallet) == did and _leftovers(wallet.home) == []
    assert wallet("doctor").code == 1  # still reported, as before


def _check_after_crash(wallet: Cli, records: dict[str, bytes], dids: list[str]) -> str:
    """The wallet opens (the CLI reconciles), doctors clean, keeps every record; returns its DID."""
    doctor = wallet("doctor", "--json")
    assert doctor.code == 0, doctor
    assert doctor.json()["ok"] is True and doctor.json()["records"] == len(records)
    assert _leftovers(wallet.home) == []
    info = read_info(wallet.home)
    assert info.did in dids
    assert _contents(wallet.home) == records
    opened = open_wallet(wallet.home, lambda _: PASSPHRASE)
    assert [i.did for i in retired_identities(opened)] == dids[: dids.index(info.did)]
    history = identity_history(info)
    assert [h["new_did"] for h in history] == dids[1 : dids.index(info.did) + 1]
    assert all(h["verified"] for h in history)
    return info.did


def _spawn(wallet: Cli, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "healthwallet", *args],
                            env=dict(wallet.env, **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _new_did_of(home: Path, before: str) -> str | None:
    """The DID a killed rotation was moving to: from its marker, or from a finished wallet.json."""
    marker = home / "rotation.json"
    if marker.exists():
        data = json.loads(marker.read_text())
        if data["old_did"] == before:
            return str(data["new_did"])
    did = json.loads((home / "wallet.json").read_text())["did"]
    return None if did == before else str(did)


@pytest.mark.parametrize("step", PRE_COMMIT + POST_COMMIT)
def test_sigkill_after_each_step_leaves_a_wallet_with_one_of_the_two_keys(
    wallet: Cli, template: tuple[Path, dict[str, bytes]], step: str
) -> None:
    # 501 records: the re-wrap spans two batches, so "rewrap-batch" kills mid-transaction
    records = _from_template(wallet, template)
    old_did = _did(wallet)
    proc = _spawn(wallet, "key", "rotate", "--json", env={"HEALTHWALLET_TEST_CRASH_AT": step})
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    new_did = _new_did_of(wallet.home, old_did)
    assert new_did is not None
    did = _check_after_crash(wallet, records, [old_did, new_did])
    assert did == (old_did if step in PRE_COMMIT else new_did)
    # and the wallet rotates normally afterwards
    again = wallet.ok("key", "rotate", "--json").json()
    assert again["old_did"] == did and again["records"] == 501
    assert _contents(wallet.home) == records


def _wait_for_marker(home: Path, proc: subprocess.Popen[bytes], limit: float = 30) -> float:
    """Seconds until the rotation marker (or its temp file) appears, or the process ends."""
    start = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - start < limit:
        if any(p.name.startswith((".tmp-rotation.json-", "rotation.json"))
               for p in home.iterdir()):
            break
        time.sleep(0.0005)
    return time.perf_counter() - start


def test_sigkill_at_random_moments_never_loses_the_wallet(
    wallet: Cli, template: tuple[Path, dict[str, bytes]]
) -> None:
    rng = random.Random(20261122)
    records = _from_template(wallet, template)
    # Time a whole rotation, and its critical part: from the marker appearing to the exit.
    probe = _spawn(wallet, "key", "rotate", "--json")
    start = time.perf_counter()
    to_marker = _wait_for_marker(wallet.home, probe)
    probe.communicate(timeout=120)
    assert probe.returncode == 0
    full = time.perf_counter() - start
    critical = max(full - to_marker, 0.01)
    dids = [h["old_did"] for h in identity_history(read_info(wallet.home))]
    dids.append(read_info(wallet.home).did)
    killed = completed = mid_rotation = attempt = 0
    # At least 16 kills; more (up to 48) until enough of them landed mid-rotation, so a
    # fast or slow machine cannot make the test pass without exercising the hard case.
    while attempt < 16 or (mid_rotation < 3 and attempt < 48):
        attempt += 1
        before = dids[-1]
        proc = _spawn(wallet, "key", "rotate", "--json")
        if attempt % 2:  # anywhere in the run
            time.sleep(rng.uniform(0, full))
        else:  # inside the part that writes
            _wait_for_marker(wallet.home, proc)
            time.sleep(rng.uniform(0, critical))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
        new_did = _new_did_of(wallet.home, before)
        if proc.returncode == 0:
            completed += 1
            new_did = json.loads(out)["new_did"]
        else:
            assert proc.returncode == -signal.SIGKILL
            killed += 1
            if new_did is not None or (wallet.home / "rotation.json").exists():
                mid_rotation += 1  # killed after the rotation had started writing
        candidates = dids + ([new_did] if new_did else [])
        did = _check_after_crash(wallet, records, candidates)
        if did != dids[-1]:
            dids.append(did)
    print(f"killed={killed} mid_rotation={mid_rotation} completed={completed}")
    assert killed >= 6, (killed, completed)
    assert mid_rotation >= 3, (killed, mid_rotation)
    assert len(dids) >= 3  # some rotations finished (directly or when the wallet was opened)


def test_concurrent_adds_during_rotation_lose_nothing(wallet: Cli, tmp_path: Path) -> None:
    records = _add_records(wallet, tmp_path, 50)
    sources = []
    for i in range(6):
        path = tmp_path / f"big{i}.pdf"
        path.write_bytes(b"%PDF-1.4\n" + random.Random(i).randbytes(400_000))
        sources.append(path)
    adders = [_spawn(wallet, "record", "add", str(path), "--json") for path in sources]
    rotations = [wallet("key", "rotate", "--json") for _ in range(3)]
    assert all(r.code == 0 for r in rotations), rotations
    for proc, path in zip(adders, sources, strict=True):
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            records[json.loads(out)["records"][0]["id"]] = path.read_bytes()
        else:
            # a writer that raced a rotation is told to run again (exit 4), never half-added
            assert proc.returncode == 4 and b"key changed" in err, err
    assert wallet.ok("doctor", "--json").json()["ok"] is True
    assert _contents(wallet.home) == records


def test_cli_revocation_and_audit_log_across_a_rotation(wallet: Cli, tmp_path: Path) -> None:
    """Grants from before and after a rotation are revoked in lists signed by their issuer."""
    from conftest import base_env

    doctor_env = dict(base_env(tmp_path), HEALTHWALLET_HOME=str(tmp_path / "doctor"),
                      HEALTHWALLET_PASSPHRASE="doctor passphrase")
    doctor = typing_status_lists(Cli(tmp_path / "doctor", doctor_env))
    doctor.ok("init", "--keystore", "file")
    doctor_did = doctor.ok("id").out.strip()
    record = tmp_path / "scan.pdf"
    record.write_bytes(b"%PDF-1.4 rotation scan")
    wallet.ok("record", "add", record)
    old_grant, new_grant = tmp_path / "old.hwgrant", tmp_path / "new.hwgrant"
    old_id = wallet.ok("grant", doctor_did, "--type", "pdf", "--expires", "1d", "--out", old_grant,
                       "--json").json()["grant_id"]
    rotated = wallet.ok("key", "rotate", "--json").json()
    new_id = wallet.ok("grant", doctor_did, "--type", "pdf", "--expires", "1d", "--out", new_grant,
                       "--json").json()["grant_id"]
    assert doctor.ok("verify", new_grant, "--json").json()["issuer"] == rotated["new_did"]
    assert doctor.ok("verify", old_grant, "--json").json()["issuer"] == rotated["old_did"]

    wallet.ok("revoke", old_id)
    old = doctor("verify", old_grant, "--json")
    assert old.code == 1
    status = next(c for c in old.json()["checks"] if c["name"] == "status")
    assert status["ok"] is False and "revoked" in status["detail"], status
    assert doctor.ok("verify", new_grant, "--json").json()["valid"] is True

    wallet.ok("revoke", new_id)
    assert doctor("verify", new_grant).code == 1
    assert {g["status"] for g in wallet.ok("grants", "--json").json()["grants"]} == {"revoked"}
    published = wallet.ok("status", "publish", "--out", tmp_path / "pub", "--json").json()
    assert len(published["files"]) == 2  # one list per issuing DID
    log = wallet.ok("log", "--json").json()
    assert log["ok"] is True
    assert [e["event"] for e in log["entries"]] == [
        "grant.issued", "grant.issued", "grant.revoked", "grant.revoked"]


def test_research_pseudonyms_survive_a_key_rotation(wallet: Cli, tmp_path: Path) -> None:
    """A study sees the same pseudonymous patient before and after the patient rotates keys."""
    from conftest import base_env, serving

    research = typing_status_lists(Cli(tmp_path / "research", dict(base_env(tmp_path),
                   HEALTHWALLET_HOME=str(tmp_path / "research"), HEALTHWALLET_PASSPHRASE="research group passphrase")))
    research.ok("init", "--keystore", "file")
    research.ok("config", "set", "allow-local-urls", "true")  # the lists are on 127.0.0.1
    group = research.ok("id").out.strip()
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps({"resourceType": "Patient", "id": "p-original-id",
                                   "gender": "female", "birthDate": "1970-05-01"}))
    wallet.ok("record", "add", patient)
    before, after = tmp_path / "before.hwshare", tmp_path / "after.hwshare"
    www = tmp_path / "www"
    www.mkdir()
    with serving(www) as base:
        _share_across_a_rotation(wallet, research, group, base, www, before, after)


def _share_across_a_rotation(wallet: Cli, research: Cli, group: str, base: str, www: Path,
                             before: Path, after: Path) -> None:
    tmp_path = before.parent
    wallet.ok("config", "set", "status-url", base + "/status/")  # consents need a hosted list
    wallet.ok("share", group, "--study", "S1", "--type", "fhir", "--out", before)
    wallet.ok("key", "rotate")
    wallet.ok("share", group, "--study", "S1", "--type", "fhir", "--out", after)
    # both per-study lists, the one of the retired key's study identity too, are published
    assert len(wallet.ok("status", "publish", "--out", www / "status", "--json").json()["files"]) == 2
    ids = set()
    for name, share in (("b", before), ("a", after)):
        out = tmp_path / f"ingest-{name}"
        research.ok("research", "ingest", share, "--k", "1", "--out", out)
        ids |= {json.loads(line)["id"] for line in (out / "Patient.ndjson").read_text().splitlines()}
    assert len(ids) == 1 and "p-original-id" not in ids
    # ingested together, the two shares (two signing DIDs) are one patient
    both = research.ok("research", "ingest", before, after, "--k", "1", "--out",
                       tmp_path / "ingest-both", "--json").json()
    assert both["patients"] == 1
