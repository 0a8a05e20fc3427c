"""The unlock agent seen from the command line (issue 11, "Fast enough to script: Unlocking").

Each test starts a real agent through `healthwallet unlock` and runs real commands with no
passphrase anywhere (no HEALTHWALLET_PASSPHRASE, no terminal): only the agent can open them.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

from agent_helpers import PASSPHRASE, AgentWallet, agent_pids, agent_wallet, wait_for
from conftest import fhir_bundle

from healthwallet.agent.location import socket_path
from healthwallet.keystore import derive_file_key, open_seed_file

__all__ = ["agent_wallet"]  # the fixture, imported so pytest finds it

NEEDS_PASSPHRASE = "a passphrase is needed and there is no terminal to ask for it"


def _socket(wallet: AgentWallet) -> Path:
    path = socket_path(wallet.home, {"XDG_RUNTIME_DIR": str(wallet.runtime)})
    assert path is not None
    return path


def _records(tmp: Path) -> tuple[Path, Path]:
    fhir = tmp / "labs.json"
    fhir.write_text(json.dumps(fhir_bundle()))
    note = tmp / "note.txt"
    note.write_text("follow-up in two weeks\n")
    return fhir, note


def test_ten_commands_run_without_a_passphrase_while_unlocked(
    agent_wallet: AgentWallet, tmp_path: Path
) -> None:
    wallet = agent_wallet
    unlocked = wallet.with_passphrase("unlock", "--for", "15m")
    assert unlocked.code == 0, unlocked
    assert unlocked.out.startswith("Unlocked for 15m, until ")
    assert "healthwallet lock" in unlocked.out

    fhir, note = _records(tmp_path)
    added = wallet.bare.ok("record", "add", fhir, "--tag", "labs", "--json").json()
    record_id = added["records"][0]["id"]
    commands: list[tuple[str | Path, ...]] = [
        ("record", "add", note),
        ("record", "list"),
        ("record", "list", "--json"),
        ("record", "show", record_id[:8], "--out", tmp_path / "labs-out.json"),
        ("record", "show", record_id[:8], "--summary"),
        ("record", "tag", record_id[:8], "annual"),
        ("doctor",),
        ("grants",),
        ("log",),
    ]
    for args in commands:  # with the first `record add`, ten commands
        result = wallet.bare(*args)
        assert result.code == 0, (args, result)
        assert "passphrase" not in result.err.lower(), (args, result)
    assert (tmp_path / "labs-out.json").read_bytes() == fhir.read_bytes()

    status = wallet.bare("unlock", "--status", "--json")
    assert status.code == 0, status
    assert status.json()["unlocked"] is True
    assert 0 < status.json()["seconds_left"] <= 900


def test_lock_then_the_next_command_needs_the_passphrase(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    wallet.bare.ok("record", "list")
    pids = agent_pids(str(wallet.runtime))
    assert len(pids) == 1

    locked = wallet.bare("lock")
    assert (locked.code, locked.out) == (0, "Locked: the agent forgot the key and stopped.\n")

    after = wallet.bare("record", "list")
    assert after.code == 4, after
    assert f"error: {NEEDS_PASSPHRASE}" in after.err
    status = wallet.bare("unlock", "--status")
    assert (status.code, status.out) == (4, "locked: commands ask for the passphrase\n")
    assert wait_for(lambda: not agent_pids(str(wallet.runtime)))
    assert not _socket(wallet).exists()
    again = wallet.bare("lock", "--json")
    assert again.code == 0
    assert again.json() == {"agent_was_running": False, "keys_forgotten": 0, "locked": True}


def test_unlock_expires_after_its_time(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock", "--for", "3s")
    started = time.monotonic()
    wallet.bare.ok("record", "list")
    assert wait_for(lambda: wallet.bare("unlock", "--status").code == 4, seconds=20)
    assert time.monotonic() - started >= 2  # not before its time (whole seconds)
    expired = wallet.bare("record", "list")
    assert expired.code == 4 and NEEDS_PASSPHRASE in expired.err
    # The agent had nothing left to hold: it left, and took its socket with it.
    assert wait_for(lambda: not agent_pids(str(wallet.runtime)))
    assert not os.path.lexists(_socket(wallet))


def test_unlock_with_a_wrong_passphrase_starts_no_agent(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wrong = wallet.bare("unlock", env={"HEALTHWALLET_PASSPHRASE": "not the passphrase"})
    assert wrong.code == 4, wrong
    assert "error: wrong passphrase" in wrong.err
    assert not agent_pids(str(wallet.runtime))
    assert wallet.bare("record", "list").code == 4


def test_unlock_rejects_a_bad_duration(agent_wallet: AgentWallet) -> None:
    for text in ("forever", "0s", "13h"):
        result = agent_wallet.with_passphrase("unlock", "--for", text)
        assert result.code == 2, (text, result)
        assert "is not a duration between 1s and 12h" in result.err
        assert "hint: write it like 90s, 15m or 2h" in result.err
    assert not agent_pids(str(agent_wallet.runtime))


def test_unlock_again_extends_the_same_agent(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock", "--for", "1m")
    first = agent_pids(str(wallet.runtime))
    wallet.with_passphrase.ok("unlock", "--for", "2h")
    assert agent_pids(str(wallet.runtime)) == first
    assert wallet.bare.ok("unlock", "--status", "--json").json()["seconds_left"] > 3600


def test_the_key_is_never_written_to_disk(agent_wallet: AgentWallet, tmp_path: Path) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    fhir, _ = _records(tmp_path)
    wallet.bare.ok("record", "add", fhir)
    wallet.bare.ok("backup", "--out", tmp_path / "wallet.hwbackup")
    wallet.bare.ok("lock")

    blob = (wallet.home / "identity.key").read_bytes()
    _, derived = derive_file_key(blob, PASSPHRASE)
    seed = open_seed_file(blob, PASSPHRASE)
    needles = []
    for secret in (seed, derived):
        needles += [secret, secret.hex().encode(), secret.hex().upper().encode()]
        needles += [base64.b64encode(secret).rstrip(b"="), base64.urlsafe_b64encode(secret)[:40]]
    scanned = 0
    for root in (tmp_path, wallet.runtime):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                scanned += 1
                for needle in needles:
                    assert needle not in content, f"key material in {path}"
    assert scanned >= 3


def test_the_agent_keeps_no_passphrase_and_cannot_dump_core(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    (pid,) = agent_pids(str(wallet.runtime))
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"HEALTHWALLET_PASSPHRASE" not in environ and PASSPHRASE.encode() not in environ
    assert PASSPHRASE.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    limits = Path(f"/proc/{pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]
    if os.geteuid() == 0:  # RLIMIT_MEMLOCK does not apply: the key page must be locked
        status = Path(f"/proc/{pid}/status").read_text()
        locked_kb = next(int(line.split()[1]) for line in status.splitlines()
                         if line.startswith("VmLck:"))
        assert locked_kb >= 4
        assert wallet.bare.ok("unlock", "--status", "--json").json()["memory_locked"] is True
    mode = os.stat(_socket(wallet)).st_mode & 0o777
    assert (mode, os.stat(_socket(wallet).parent).st_mode & 0o777) == (0o600, 0o700)


def test_symlink_planted_at_agent_socket_is_refused(
    agent_wallet: AgentWallet, tmp_path: Path
) -> None:
    wallet = agent_wallet
    # A real agent holding this wallet's key, somewhere else...
    elsewhere = wallet.runtime / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    real = elsewhere / "real.sock"
    wallet.with_passphrase.ok("unlock", env={"HEALTHWALLET_AGENT_SOCK": str(real)})
    assert wallet.bare("record", "list", env={"HEALTHWALLET_AGENT_SOCK": str(real)}).code == 0
    # ...and a symlink to it planted where the wallet looks by default.
    planted = _socket(wallet)
    planted.parent.mkdir(mode=0o700)
    planted.symlink_to(real)

    result = wallet.bare("record", "list")
    assert result.code == 4 and NEEDS_PASSPHRASE in result.err
    unlock = wallet.with_passphrase("unlock")
    assert unlock.code == 4, unlock
    assert "is not a socket (a symlink or a file was planted there)" in unlock.err
    assert planted.is_symlink()  # left alone, not followed or replaced
    lock = wallet.bare("lock")
    assert lock.code == 4 and "planted" in lock.err
    wallet.bare.ok("lock", env={"HEALTHWALLET_AGENT_SOCK": str(real)})


def test_file_planted_at_agent_socket_is_refused(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    planted = _socket(wallet)
    planted.parent.mkdir(mode=0o700)
    planted.write_text("not a socket")
    result = wallet.with_passphrase("unlock")
    assert result.code == 4 and "is not a socket" in result.err
    assert planted.read_text() == "not a socket"
    assert not agent_pids(str(wallet.runtime))


def test_agent_directory_open_to_others_is_refused(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    directory = _socket(wallet).parent
    directory.chmod(0o755)
    try:
        result = wallet.bare("record", "list")
        assert result.code == 4 and NEEDS_PASSPHRASE in result.err
        refused = wallet.with_passphrase("unlock")
        assert refused.code == 4
        assert f"the directory {directory} is open to other users (mode 755)" in refused.err
    finally:
        directory.chmod(0o700)


def test_agent_turned_off_by_an_empty_socket_setting(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    off = {"HEALTHWALLET_AGENT_SOCK": ""}
    assert wallet.bare("record", "list", env=off).code == 4
    refused = wallet.with_passphrase("unlock", env=off)
    assert refused.code == 2 and "the unlock agent is turned off" in refused.err


def test_key_rotation_leaves_the_agent_key_stale(agent_wallet: AgentWallet) -> None:
    wallet = agent_wallet
    wallet.with_passphrase.ok("unlock")
    wallet.with_passphrase.ok("key", "rotate")
    # identity.key has a new salt, so the agent holds no key for it: back to the passphrase.
    result = wallet.bare("record", "list")
    assert result.code == 4 and NEEDS_PASSPHRASE in result.err
    assert wallet.bare("unlock", "--status").code == 4
    wallet.with_passphrase.ok("unlock")  # the same agent takes the new key
    assert wallet.bare("record", "list").code == 0


def test_two_unlocks_at_once_share_one_agent(agent_wallet: AgentWallet) -> None:
    import subprocess
    import sys

    wallet = agent_wallet
    env = dict(wallet.with_passphrase.env)
    procs = [
        subprocess.Popen([sys.executable, "-m", "healthwallet", "unlock"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = [(proc.wait(timeout=120), proc.communicate()) for proc in procs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert len(agent_pids(str(wallet.runtime))) == 1
    assert wallet.bare("record", "list").code == 0
