"""The ethereum backend takes its sending key from a real Secret Service keyring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Cli, require_tool
from ledger.conftest import CHAIN_ID, DEV_KEY, start_anvil

SCRIPT = r"""
set -eu
printf 'session-keyring-password' | gnome-keyring-daemon --unlock --components=secrets --replace -d >/dev/null 2>&1
HW="$PY -m healthwallet"
$PY -c 'import keyring, os; keyring.set_password("healthwallet", "ethereum", os.environ["ETH_KEY_FOR_KEYRING"])'
unset ETH_KEY_FOR_KEYRING
$HW init --keystore file >/dev/null
printf '%%PDF-1.4 anchored via keyring key' > "$WORK/a.pdf"
$HW record add "$WORK/a.pdf" >/dev/null
$HW config set ledger ethereum >/dev/null
$HW config set ethereum.rpc-url "$RPC" >/dev/null
$HW config set ethereum.chain-id "$CHAIN" >/dev/null
echo "ANCHOR $($HW anchor --json)"
"""


def test_sending_key_from_gnome_keyring(cli: Cli, tmp_path: Path) -> None:
    runner = require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    node = start_anvil()
    try:
        env = dict(cli.env)
        env.pop("HEALTHWALLET_ETH_KEY", None)
        env.update({"PY": sys.executable, "WORK": str(tmp_path), "RPC": node.url,
                    "CHAIN": str(CHAIN_ID), "ETH_KEY_FOR_KEYRING": DEV_KEY})
        proc = subprocess.run([runner, "--", "bash", "-c", SCRIPT], env=env,
                              capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        out = proc.stdout.decode()
        anchored = json.loads(out.split("ANCHOR ", 1)[1])
        assert anchored["ledger"] == "ethereum" and anchored["count"] == 1
        assert node.nonce() == 1
        assert DEV_KEY[2:] not in out and DEV_KEY[2:] not in proc.stderr.decode()
        for path in cli.home.rglob("*"):
            if path.is_file():
                assert DEV_KEY[2:].encode() not in path.read_bytes(), path
    finally:
        node.stop()
