"""The keyring keystore against a real Secret Service: gnome-keyring under dbus-run-session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Cli, require_tool

SCRIPT = r"""
set -eu
# An unlocked login keyring for this private session bus only.
printf 'session-keyring-password' | gnome-keyring-daemon --unlock --components=secrets --replace -d >/dev/null 2>&1
HW="$PY -m healthwallet"
echo "INIT $($HW init --json)"
echo "ID $($HW id --json)"
printf '{"resourceType": "Patient", "id": "kr"}' > "$WORK/p.json"
echo "ADD $($HW record add "$WORK/p.json" --json)"
echo "DOCTOR $($HW doctor --json)"
echo "LOOKUP $(secret-tool search --all service healthwallet 2>&1 | grep -c '^attribute.username' || true)"
set +e
$HW init --json >/dev/null 2>&1
echo "AGAIN rc=$?"
set -e
# Remove the key from the keyring: the wallet must say the keystore is missing (exit 4).
$PY - <<'PY'
import json, keyring, os
info = json.load(open(os.path.join(os.environ["HEALTHWALLET_HOME"], "wallet.json")))
keyring.delete_password("healthwallet", info["wallet_id"])
PY
set +e
$HW record list --json > /dev/null 2> "$WORK/err"
echo "MISSING rc=$? $(head -1 "$WORK/err")"
"""


def test_keyring_keystore_with_real_gnome_keyring(cli: Cli, tmp_path: Path) -> None:
    runner = require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    require_tool("secret-tool")
    env = dict(cli.env)
    env.pop("HEALTHWALLET_PASSPHRASE")  # the keyring needs no passphrase
    env.update({"PY": sys.executable, "WORK": str(tmp_path)})
    proc = subprocess.run([runner, "--", "bash", "-c", SCRIPT], env=env, capture_output=True,
                          timeout=120)
    lines = dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines() if " " in line)
    assert proc.returncode == 0, proc.stderr.decode()
    init = json.loads(lines["INIT"])
    assert init["keystore"] == "keyring"
    assert json.loads(lines["ID"])["did"] == init["did"]
    assert json.loads(lines["ADD"])["records"][0]["type"] == "fhir"
    assert json.loads(lines["DOCTOR"])["ok"] is True
    assert lines["LOOKUP"].strip() == "1"
    assert lines["AGAIN"].strip() == "rc=2"
    assert lines["MISSING"].startswith("rc=4 error: the identity key is missing from the OS keyring")
    # the seed never touched the disk of the wallet home
    assert not (cli.home / "identity.key").exists()


def test_without_a_keyring_init_falls_back_to_the_file_keystore(cli: Cli) -> None:
    # No session bus in this environment: no real keyring backend is available.
    env = {k: v for k, v in cli.env.items() if not k.startswith("DBUS")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    result = cli.ok("init", "--json", env=env)
    assert result.json()["keystore"] == "file"
    assert (cli.home / "identity.key").exists()
    explicit = Cli(cli.home.parent / "second", dict(env, HEALTHWALLET_HOME=str(cli.home.parent / "second")))
    failed = explicit("init", "--keystore", "keyring")
    assert failed.code == 4 and "no OS keyring" in failed.err
