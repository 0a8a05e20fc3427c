"""`keystore migrate` (and rotation) against a real Secret Service: gnome-keyring on D-Bus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Cli, require_tool

SCRIPT = r"""
set -eu
printf 'session-keyring-password' | gnome-keyring-daemon --unlock --components=secrets --replace -d >/dev/null 2>&1
HW="$PY -m healthwallet"
NOPASS="env -u HEALTHWALLET_PASSPHRASE"
entries() { secret-tool search --all service healthwallet 2>&1 | grep '^attribute.username' | sort | tr '\n' ' ' || true; }
keyfile() { test -e "$HEALTHWALLET_HOME/identity.key" && echo present || echo absent; }

echo "INIT $($HW init --keystore file --json)"
printf '{"resourceType": "Patient", "id": "migrated"}' > "$WORK/p.json"
echo "ADD $($HW record add "$WORK/p.json" --json)"
echo "TOKEYRING $($HW keystore migrate --to keyring --json)"
echo "KEYFILE1 $(keyfile)"
echo "ENTRIES1 $(entries)"
echo "LIST1 $($NOPASS $HW record list --json)"
set +e
$NOPASS $HW keystore migrate --to keyring > /dev/null 2>&1
echo "SAME rc=$?"
set -e

# rotation with the seed in the keyring: the pending entry lives in the keyring too
echo "ROTATE $($NOPASS $HW key rotate --json 2>/dev/null)"
echo "ENTRIES2 $(entries)"
set +e
$NOPASS HEALTHWALLET_TEST_CRASH_AT=wallet-json $HW key rotate --json > "$WORK/crashed.json" 2>/dev/null
echo "CRASH rc=$?"
set -e
echo "ENTRIES3 $(entries)"
echo "DOCTOR $($NOPASS $HW doctor --json)"
echo "ENTRIES4 $(entries)"
echo "HISTORY $($HW id --history --json)"

echo "TOFILE $($HW keystore migrate --to file --json)"
echo "KEYFILE2 $(keyfile)"
echo "ENTRIES5 $(entries)"
echo "LIST2 $($HW record list --json)"
set +e
$NOPASS $HW record list > /dev/null 2>&1
echo "NOPASS rc=$?"
set -e

# a backup restored on "another machine" into the keyring: no passphrase needed afterwards
$HW key export --phrase --show-secret --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["phrase"])' > "$WORK/phrase.txt"
$HW backup --out "$WORK/b.hwbackup" > /dev/null
echo "RESTORE $($NOPASS $HW restore "$WORK/b.hwbackup" --home "$WORK/restored" --phrase-file "$WORK/phrase.txt" --keystore keyring --json)"
echo "RDOCTOR $($NOPASS $HW --home "$WORK/restored" doctor --json)"
echo "ENTRIES6 $(entries | wc -w)"
"""


def test_migrate_between_file_and_real_keyring_and_rotate_there(cli: Cli, tmp_path: Path) -> None:
    runner = require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    require_tool("secret-tool")
    env = dict(cli.env)
    env.update({"PY": sys.executable, "WORK": str(tmp_path)})
    proc = subprocess.run([runner, "--", "bash", "-c", SCRIPT], env=env, capture_output=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines() if " " in line)
    did = json.loads(lines["INIT"])["did"]
    record_id = json.loads(lines["ADD"])["records"][0]["id"]
    wallet_id = json.loads((cli.home / "wallet.json").read_text())["wallet_id"]

    # file -> keyring: the file is gone only after the keyring entry read back
    assert json.loads(lines["TOKEYRING"]) == {"keystore": "keyring", "did": did}
    assert lines["KEYFILE1"].strip() == "absent"
    assert lines["ENTRIES1"].split() == ["attribute.username", "=", wallet_id]
    assert [r["id"] for r in json.loads(lines["LIST1"])["records"]] == [record_id]
    assert lines["SAME"].strip() == "rc=2"

    # rotation in the keyring, and a crash after wallet.json changed (pending entry left over)
    rotated = json.loads(lines["ROTATE"])
    assert rotated["old_did"] == did and rotated["records"] == 1
    assert lines["ENTRIES2"].split() == ["attribute.username", "=", wallet_id]
    assert lines["CRASH"].strip() == "rc=137"
    assert set(lines["ENTRIES3"].split()) == {"attribute.username", "=", wallet_id,
                                              wallet_id + ".pending"}
    assert json.loads(lines["DOCTOR"])["ok"] is True
    assert lines["ENTRIES4"].split() == ["attribute.username", "=", wallet_id]  # reconciled
    history = json.loads(lines["HISTORY"])
    assert [h["old_did"] for h in history["history"]] == [did, rotated["new_did"]]
    assert all(h["verified"] for h in history["history"])

    # keyring -> file: sealed under HEALTHWALLET_PASSPHRASE, the keyring entry removed
    assert json.loads(lines["TOFILE"]) == {"keystore": "file", "did": history["did"]}
    assert lines["KEYFILE2"].strip() == "present"
    assert lines["ENTRIES5"].strip() == ""
    assert [r["id"] for r in json.loads(lines["LIST2"])["records"]] == [record_id]
    assert lines["NOPASS"].strip() == "rc=4"
    restored = json.loads(lines["RESTORE"])
    assert restored["did"] == history["did"] and restored["records"] == 1
    assert json.loads(lines["RDOCTOR"])["ok"] is True
    assert lines["ENTRIES6"].strip() == "3"  # one keyring entry: the restored wallet's own
    assert not (tmp_path / "restored" / "identity.key").exists()
    # the seed is never on disk in the clear
    key_file = (cli.home / "identity.key").read_text()
    assert json.loads(key_file)["format"] == "healthwallet-keystore/v1"


def test_migrate_to_a_missing_keyring_changes_nothing(wallet: Cli) -> None:
    env = {k: v for k, v in wallet.env.items() if not k.startswith("DBUS")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    before = {p.name: p.read_bytes() for p in wallet.home.iterdir() if p.is_file()}
    result = wallet("keystore", "migrate", "--to", "keyring", env=env)
    assert result.code == 4 and "no OS keyring" in result.err
    after = {p.name: p.read_bytes() for p in wallet.home.iterdir() if p.is_file()}
    assert after["identity.key"] == before["identity.key"]
    assert after["wallet.json"] == before["wallet.json"]
    assert wallet("keystore", "migrate", "--to", "file").code == 2
    assert wallet("keystore", "migrate", "--to", "cloud").code == 2
    restore_to_keyring = Cli(wallet.home.parent / "r", dict(env, HEALTHWALLET_HOME=str(
        wallet.home.parent / "r")))
    wallet.ok("backup", "--out", wallet.home.parent / "b.hwbackup")
    phrase = wallet.ok("key", "export", "--phrase", "--show-secret", "--json").json()["phrase"]
    (wallet.home.parent / "p.txt").write_text(phrase)
    no_keyring = restore_to_keyring("restore", wallet.home.parent / "b.hwbackup", "--phrase-file",
                                    wallet.home.parent / "p.txt", "--keystore", "keyring")
    assert no_keyring.code == 4 and "no OS keyring" in no_keyring.err
    assert not (wallet.home.parent / "r").exists()
    assert not [p for p in wallet.home.parent.iterdir() if p.name.startswith(".tmp")]
    wrong = wallet("keystore", "migrate", "--to", "keyring", env={**env,
                   "HEALTHWALLET_PASSPHRASE": "wrong"})
    assert wrong.code == 4
    assert (wallet.home / "identity.key").read_bytes() == before["identity.key"]
