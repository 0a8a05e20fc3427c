"""Files the user names are written safely: planted links, FIFOs and devices are never followed,
wallet maintenance stays inside the home, and no plaintext outlives an interrupted command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Cli, base_env, require
from local_status import status_path, typing_status_lists

SCAN = b"%PDF-1.7\n" + b"knee scan of the patient\n" * 4000


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, Cli]:
    """A patient with one PDF record and a doctor, each with a wallet."""
    out = {}
    for name in ("patient", "doctor"):
        env = base_env(tmp_path)
        env["HEALTHWALLET_HOME"] = str(tmp_path / name)
        env["HEALTHWALLET_PASSPHRASE"] = f"{name} passphrase"
        out[name] = typing_status_lists(Cli(tmp_path / name, env))
        out[name].ok("init", "--keystore", "file")
    scan = tmp_path / "knee.pdf"
    scan.write_bytes(SCAN)
    out["patient"].ok("record", "add", scan)
    return out


def _grant(pair: dict[str, Cli], tmp_path: Path) -> Path:
    doctor_did = pair["doctor"].ok("id").out.strip()
    grant_file = tmp_path / "g.hwgrant"
    pair["patient"].ok("grant", doctor_did, "--type", "pdf", "--expires", "1d", "--out", grant_file)
    return grant_file


def _entries(directory: Path) -> dict[str, str]:
    kinds = {}
    for entry in directory.iterdir():
        mode = entry.lstat().st_mode
        kinds[entry.name] = (
            "link" if stat.S_ISLNK(mode) else "fifo" if stat.S_ISFIFO(mode) else
            "dir" if stat.S_ISDIR(mode) else "file"
        )
    return kinds


# -- the safe writer -------------------------------------------------------------------------------


def test_symlink_planted_at_publish_temp_name_is_not_followed(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    patient = pair["patient"]
    _grant(pair, tmp_path)
    keystore = patient.home / "identity.key"
    before = keystore.read_bytes()
    out = tmp_path / "pub"
    out.mkdir()
    # the fixed temp name `status publish` used, and the final name, both point at the keystore
    (out / ".1.json.tmp").symlink_to(keystore)
    (out / "1.json").symlink_to(keystore)
    result = patient("status", "publish", "--out", out, "--json")
    assert result.code == 0, result
    assert keystore.read_bytes() == before
    assert _entries(out) == {".1.json.tmp": "link", "1.json": "file"}
    assert json.loads((out / "1.json").read_bytes())["type"][-1].startswith("StatusList")
    assert stat.S_IMODE((out / "1.json").stat().st_mode) == 0o644
    assert patient.ok("id").out.strip().startswith("did:key:")  # the keystore still opens


def test_fifo_planted_at_output_name_is_replaced_not_opened(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    patient = pair["patient"]
    _grant(pair, tmp_path)
    out = tmp_path / "pub"
    out.mkdir()
    os.mkfifo(out / "1.json")
    result = patient("status", "publish", "--out", out, timeout=60)
    assert result.code == 0, result
    assert _entries(out) == {"1.json": "file"}


def test_symlink_planted_at_out_dir_by_another_user_is_not_followed(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    # Planting a link owned by another user needs root (CI runs as root: there it must run).
    require(os.geteuid() == 0, "root, to plant a link as another user")
    patient = pair["patient"]
    _grant(pair, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    out = tmp_path / "pub"
    out.symlink_to(victim)
    os.lchown(out, 65534, 65534)  # planted by `nobody`
    result = patient("status", "publish", "--out", out)
    assert result.code == 2, result
    assert result.err.startswith("error: the publish directory is a symbolic link owned by another")
    assert "hint: " in result.err
    assert list(victim.iterdir()) == []


def test_open_never_writes_through_a_symlink_planted_at_a_record_name(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    doctor = pair["doctor"]
    grant_file = _grant(pair, tmp_path)
    keystore = doctor.home / "identity.key"
    before = keystore.read_bytes()
    out = tmp_path / "opened"
    out.mkdir()
    (out / "knee.pdf").symlink_to(keystore)
    os.mkfifo(out / "knee (2).pdf")
    opened = doctor.ok("open", grant_file, "--out", out, "--json", timeout=60).json()
    assert [Path(r["path"]).name for r in opened["records"]] == ["knee (3).pdf"]
    assert keystore.read_bytes() == before
    assert (out / "knee (3).pdf").read_bytes() == SCAN
    assert _entries(out) == {"knee.pdf": "link", "knee (2).pdf": "fifo", "knee (3).pdf": "file"}


def test_record_show_out_replaces_a_planted_symlink_instead_of_writing_through(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    patient = pair["patient"]
    keystore = patient.home / "identity.key"
    before = keystore.read_bytes()
    record_id = patient.ok("record", "list", "--json").json()["records"][0]["id"]
    out = tmp_path / "shown.pdf"
    out.symlink_to(keystore)
    patient.ok("record", "show", record_id, "--out", out)
    assert keystore.read_bytes() == before
    assert not out.is_symlink() and out.read_bytes() == SCAN
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_backup_out_never_writes_through_a_planted_symlink(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    patient = pair["patient"]
    keystore = patient.home / "identity.key"
    before = keystore.read_bytes()
    out = tmp_path / "wallet.hwbackup"
    out.symlink_to(tmp_path / "elsewhere")  # dangling: `exists()` says no
    refused = patient("backup", "--out", out)
    assert refused.code == 2 and "already exists" in refused.err, refused
    assert not (tmp_path / "elsewhere").exists()
    out.unlink()
    out.symlink_to(keystore)
    patient.ok("backup", "--out", out, "--force")
    assert keystore.read_bytes() == before
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600


# -- wallet maintenance stays inside the home ------------------------------------------------------


def _index(cli: Cli) -> sqlite3.Connection:
    return sqlite3.connect(cli.home / "vault.sqlite", isolation_level=None)


def test_crafted_pending_row_never_deletes_a_file_outside_the_home(
    wallet: Cli, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the wallet's")
    (tmp_path / ".tmp-victim").write_bytes(b"not the wallet's either")
    with contextlib.closing(_index(wallet)) as db:
        db.execute("INSERT INTO pending (id) VALUES ('../../victim'), ('../../.tmp-victim')")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(SCAN)
    wallet.ok("record", "add", scan)  # a writer: recovers what `pending` lists
    assert victim.read_bytes() == b"not the wallet's"
    assert (tmp_path / ".tmp-victim").exists()
    with contextlib.closing(_index(wallet)) as db:
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0


def test_crafted_record_id_never_becomes_a_path(wallet: Cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"not the wallet's")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(SCAN)
    wallet.ok("record", "add", scan)
    with contextlib.closing(_index(wallet)) as db:
        db.execute("UPDATE records SET id='../../victim'")
    removed = wallet("record", "rm", "../../victim")
    assert removed.code == 1, removed
    assert removed.err.startswith("error: the record index holds an id that is not a record id")
    assert "Traceback" not in removed.err
    assert victim.read_bytes() == b"not the wallet's"


def test_blobs_folder_that_is_a_symlink_is_refused_not_followed(
    wallet: Cli, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "photo.jpg").write_bytes(b"someone's photo")
    elsewhere.chmod(0o755)
    shutil.rmtree(wallet.home / "blobs")
    (wallet.home / "blobs").symlink_to(elsewhere)
    for args in (("doctor",), ("record", "list"), ("record", "add", wallet.home / "wallet.json")):
        result = wallet(*args)
        assert result.code == 2, (args, result)
        assert result.err.startswith("error: the wallet home holds a symbolic link ('blobs')")
        assert "\nhint: " in result.err
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
    assert [p.name for p in elsewhere.iterdir()] == ["photo.jpg"]


def test_wallet_file_that_is_a_symlink_is_refused_and_nothing_is_created(
    wallet: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "created-outside"
    (wallet.home / ".lock").unlink(missing_ok=True)
    (wallet.home / ".lock").symlink_to(target)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(SCAN)
    result = wallet("record", "add", scan)
    assert result.code == 2, result
    assert "symbolic link ('.lock')" in result.err
    assert not target.exists()


# -- no plaintext outlives an interrupted command --------------------------------------------------


def _spawn(cli: Cli, *args: str | Path) -> subprocess.Popen[bytes]:
    # Ctrl-C as a terminal delivers it: SIGINT at its default (a background runner may ignore it)
    return subprocess.Popen([sys.executable, "-m", "healthwallet", *map(str, args)],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_temp(directory: Path, proc: subprocess.Popen[bytes], min_size: int = 0) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name.startswith(".tmp-hw-") and not entry.name.endswith(".lock"):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat().st_size >= min_size:
                            return entry
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    raise AssertionError("no temp file appeared")


def _leftovers(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_open_leaves_no_plaintext_past_any_next_command(
    pair: dict[str, Cli], tmp_path: Path, sig: signal.Signals
) -> None:
    patient, doctor = pair["patient"], pair["doctor"]
    big = tmp_path / "mri.pdf"
    big.write_bytes(b"%PDF-1.7\n" + os.urandom(8_000_000))
    patient.ok("record", "add", big)
    doctor_did = doctor.ok("id").out.strip()
    grant_file = tmp_path / "g.hwgrant"
    patient.ok("grant", doctor_did, "--type", "pdf", "--expires", "1d", "--out", grant_file)
    grant = grant_file.read_bytes()
    slow = tmp_path / "slow.hwgrant"
    os.mkfifo(slow)  # a slow pipe: the first records arrive, the rest never does
    out = tmp_path / "opened"
    listed = status_path(grant)  # a file:// list is read only from a path the user types
    assert listed is not None
    proc = _spawn(doctor, "open", slow, "--out", out, "--status-list", listed)
    with open(slow, "wb") as pipe:
        pipe.write(grant[: len(grant) - 1_000_000])
        pipe.flush()
        temp = _wait_for_temp(out, proc, min_size=1_000_000)
        assert stat.S_IMODE(temp.stat().st_mode) == 0o600  # private while it exists
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert _leftovers(out) == []  # cleaned up on the way out
    else:
        assert proc.returncode == -signal.SIGKILL
        assert _leftovers(out)  # the kill landed mid-write
    # the next run of any command removes what the killed one left
    doctor.ok("record", "list")
    assert _leftovers(out) == []
    assert _leftovers(doctor.home / ".tmp-outputs") == []
    doctor.ok("open", grant_file, "--out", out)
    assert sorted(p.name for p in out.iterdir()) == ["knee.pdf", "mri.pdf"]


def test_killed_record_show_leaves_nothing_past_any_next_command(
    wallet: Cli, tmp_path: Path
) -> None:
    big = tmp_path / "mri.pdf"
    big.write_bytes(b"%PDF-1.7\n" + os.urandom(40_000_000))
    record_id = wallet.ok("record", "add", big, "--json").json()["records"][0]["id"]
    out = tmp_path / "shown"
    out.mkdir()
    proc = _spawn(wallet, "record", "show", record_id, "--out", out / "mri.pdf")
    temp = _wait_for_temp(out, proc)
    assert stat.S_IMODE(temp.stat().st_mode) == 0o600
    proc.kill()
    proc.communicate(timeout=60)
    assert _leftovers(out)
    wallet.ok("id")  # any next command, here one that only reads
    assert _leftovers(out) == []


def test_killed_record_add_leaves_nothing_past_any_next_command(
    wallet: Cli, tmp_path: Path
) -> None:
    big = tmp_path / "mri.pdf"
    big.write_bytes(b"%PDF-1.7\n" + os.urandom(60_000_000))
    staging = wallet.home / ".tmp-staging"
    proc = _spawn(wallet, "record", "add", big)
    _wait_for_temp(staging, proc, min_size=1)
    proc.kill()
    proc.communicate(timeout=60)
    assert _leftovers(staging)
    wallet.ok("record", "list")  # a reader
    assert _leftovers(staging) == []
    assert _leftovers(wallet.home / "blobs") == []


# -- file names that `open` writes -----------------------------------------------------------------


def test_file_names_open_writes_are_free_of_bidi_controls_and_lookalike_slashes(
    pair: dict[str, Cli], tmp_path: Path
) -> None:
    patient, doctor = pair["patient"], pair["doctor"]
    names = ["invoice\u202efdp.sh", "..\u2215..\u2215.bashrc", "x\x1b]0;owned\x07.pdf"]
    for name in names:
        source = tmp_path / "src" / name
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(SCAN)
        patient.ok("record", "add", source, "--type", "pdf", "--allow-duplicate")
    grant_file = _grant(pair, tmp_path)
    out = tmp_path / "opened"
    doctor.ok("open", grant_file, "--out", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["knee.pdf", "invoice_fdp.sh", "_.._.bashrc", "x_]0;owned_.pdf"]
    )
    record_id = patient.ok("record", "list", "--json").json()["records"][1]["id"]
    shown = tmp_path / "shown"
    shown.mkdir()
    patient.ok("record", "show", record_id, "--out", shown)
    assert [p.name for p in shown.iterdir()] == ["invoice_fdp.sh"]
