"""Transcripts of the wallet commands: init, id, config, conventions, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, Cli


def test_init_creates_a_private_wallet_and_prints_the_did(cli: Cli) -> None:
    result = cli.ok("init", "--keystore", "file", "--json")
    payload = result.json()
    assert payload["did"].startswith("did:key:z6Mk")
    assert payload["keystore"] == "file"
    assert Path(payload["home"]) == cli.home
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
    for path in cli.home.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert cli.ok("id", "--json").json() == {"did": payload["did"]}
    assert cli.ok("id").out.strip() == payload["did"]


def test_init_twice_refuses_and_loses_nothing(wallet: Cli) -> None:
    did = wallet.ok("id").out.strip()
    before = {p: p.read_bytes() for p in wallet.home.rglob("*") if p.is_file()}
    again = wallet("init", "--keystore", "file")
    assert again.code == 2
    assert again.err.startswith("error: a wallet already exists")
    assert "hint: " in again.err and "Traceback" not in again.err
    after = {p: p.read_bytes() for p in wallet.home.rglob("*") if p.is_file()}
    assert before == after
    assert wallet.ok("id").out.strip() == did


def test_passphrase_file_and_wrong_passphrase(wallet: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("correct horse battery staple\n")
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    assert wallet.ok("--passphrase-file", good, "record", "list").code == 0
    # global options may also follow the command
    assert wallet.ok("record", "list", "--passphrase-file", good).code == 0
    result = wallet("record", "list", "--passphrase-file", bad)
    assert result.code == 4
    assert result.err.splitlines()[0].startswith("error: wrong passphrase")
    result = wallet("record", "list", env={"HEALTHWALLET_PASSPHRASE": "nope"})
    assert result.code == 4


def test_no_passphrase_and_no_terminal_fails_without_prompting(cli: Cli) -> None:
    env = dict(cli.env)
    env.pop("HEALTHWALLET_PASSPHRASE")
    proc = subprocess.run([sys.executable, "-m", "healthwallet", "init", "--keystore", "file"],
                          env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 4
    assert b"HEALTHWALLET_PASSPHRASE" in proc.stderr
    assert not (cli.home / "wallet.json").exists()


def test_prompt_asks_twice_on_a_terminal(cli: Cli) -> None:
    import pty

    env = dict(cli.env)
    env.pop("HEALTHWALLET_PASSPHRASE")
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(sys.executable, [sys.executable, "-m", "healthwallet", "init", "--keystore", "file"], env)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        deadline = time.time() + 30
        while marker not in output and time.time() < deadline:
            output += os.read(fd, 1024)

    read_until(b"New passphrase:")
    os.write(fd, b"typed secret\n")
    read_until(b"Repeat passphrase:")
    os.write(fd, b"typed secret\n")
    read_until(b"Your DID")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"typed secret" not in output.replace(b"typed secret\r\n", b"", 2)
    assert cli.ok("id").code == 0
    assert cli("record", "list", env={"HEALTHWALLET_PASSPHRASE": "typed secret"}).code == 0


def test_home_flag_beats_env_and_default_home_is_platform_data_dir(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    cli.ok("--home", other, "init", "--keystore", "file")
    assert (other / "wallet.json").exists() and not cli.home.exists()
    env = {k: v for k, v in cli.env.items() if k != "HEALTHWALLET_HOME"}
    runner = Cli(cli.home, env)
    runner.ok("init", "--keystore", "file")
    assert (Path(env["XDG_DATA_HOME"]) / "healthwallet" / "wallet.json").exists()


def test_missing_wallet_is_not_found_and_names_the_path_it_looked_in(cli: Cli) -> None:
    result = cli("id")
    assert result.code == 3
    assert result.err.startswith(f"error: no wallet in {cli.home}\n")
    assert "healthwallet init" in result.err


def test_where_prints_the_active_home_its_source_and_the_keystore(cli: Cli, tmp_path: Path) -> None:
    before = cli.ok("where", "--json").json()
    assert before == {"home": str(cli.home), "home_from": "$HEALTHWALLET_HOME", "wallet": False}
    assert "none here" in cli.ok("where").out
    cli.ok("init", "--keystore", "file")
    after = cli.ok("where", "--json").json()
    assert after["wallet"] is True and after["keystore"] == "file"
    assert after["key_location"] == str(cli.home / "identity.key")
    assert after["did"] == cli.ok("id").out.strip()
    other = tmp_path / "elsewhere"
    flagged = cli.ok("where", "--home", other, "--json").json()
    assert flagged["home"] == str(other) and flagged["home_from"] == "--home"
    human = cli.ok("where").out
    assert f"home      {cli.home}  (from $HEALTHWALLET_HOME)" in human
    assert "keystore  file: " in human


def test_usage_errors_are_one_line_exit_2(wallet: Cli) -> None:
    for args in (["record", "add"], ["init", "--keystore", "cloud"], ["frobnicate"],
                 ["record", "list", "--type", "video"], ["config", "set", "nope", "1"]):
        result = wallet(*args)
        assert result.code == 2, (args, result)
        lines = result.err.strip().splitlines()
        assert lines[0].startswith("error: "), result.err
        assert lines[-1].startswith("hint: "), result.err
        assert "Traceback" not in result.err


def test_json_errors_are_one_object(wallet: Cli) -> None:
    result = wallet("record", "show", "ffffffff", "--json")
    assert result.code == 3
    assert json.loads(result.out)["error"]["exit_code"] == 3


def test_config_set_get_list(wallet: Cli) -> None:
    wallet.ok("config", "set", "max-expiry-days", "30")
    assert wallet.ok("config", "get", "max-expiry-days").out.strip() == "30"
    assert wallet.ok("config", "list", "--json").json()["config"]["max-expiry-days"] == "30"


def test_version_and_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "healthwallet", "--version"], capture_output=True,
                         cwd=ROOT, check=True).stdout.decode()
    assert out.startswith("healthwallet ")
    script = Path(sys.executable).parent / "healthwallet"
    assert subprocess.run([script, "--version"], capture_output=True).stdout.decode() == out


def test_debug_shows_a_traceback_only_when_asked(wallet: Cli) -> None:
    wallet.home.joinpath("config.json").write_text("{not json")
    plain = wallet("config", "list")
    assert plain.code == 2 and "Traceback" not in plain.err
    debug = wallet("--debug", "config", "list")
    assert debug.code == 2 and "Traceback" in debug.err


def test_numeric_settings_are_checked(wallet: Cli) -> None:
    for key, value in (("max-expiry-days", "a year"), ("max-expiry-days", "0"),
                       ("ethereum.confirmations", "-1"), ("ethereum.chain-id", "mainnet"),
                       ("clock-skew-seconds", "1m")):
        result = wallet("config", "set", key, value)
        assert result.code == 2 and result.err.startswith("error: "), (key, value, result)
    wallet.ok("config", "set", "clock-skew-seconds", "0")
    wallet.ok("config", "set", "ethereum.chain-id", "31337")
    assert wallet.ok("config", "get", "max-expiry-days").out.strip() == "365"
