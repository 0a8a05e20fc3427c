"""Backup and restore of a large vault: throughput and peak memory, against raw secretstream.

Run: .venv/bin/python benchmarks/bench_backup.py [--quick]
A vault of 1 GiB (128 MiB with --quick) in 64 MiB records is backed up and restored, each in
a child process whose peak RSS is read with wait4. The baseline is raw secretstream
encryption/decryption of the same number of bytes, file to file on the same disk.
Targets: backup and restore each >= 50% of raw throughput (a backup re-encrypts the already
encrypted blobs and hashes them; a restore decrypts, hashes, writes and fsyncs every file), and
peak RSS < 100 MiB for both, whatever the vault size. On a machine whose disk is the bottleneck
all four figures converge on the disk's write speed.

The children skip the keystore (the identity is handed over in a private file and the restored
seed goes to an in-memory keyring): unlocking a file keystore costs Argon2id's 256 MiB by design,
which `bench_vault.py` already reports, and would hide the streaming memory measured here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import report

from healthwallet import stream
from healthwallet.keys import Identity
from healthwallet.unlock import init_wallet
from healthwallet.vault import Vault

QUICK = "--quick" in sys.argv
MIB = 1024 * 1024
RECORD_MIB = 64
ROOT = str(Path(__file__).resolve().parents[1])

_PRELUDE = f"""
import sys
sys.path.insert(0, {ROOT!r})
from pathlib import Path
from healthwallet.keys import Identity
from healthwallet.wallet import Wallet, read_info
home = Path(sys.argv[1])
identity = Identity(bytes.fromhex(Path(sys.argv[2]).read_text()))
"""
_BACKUP_CHILD = (
    _PRELUDE
    + """
from healthwallet.backup import create_backup
create_backup(Wallet(home, read_info(home), identity), Path(sys.argv[3]))
"""
)
_RESTORE_CHILD = (
    _PRELUDE
    + """
from healthwallet.backup import BackupKey, restore_backup
class MemoryKeyring:
    def __init__(self): self.values = {}
    def get_password(self, service, user): return self.values.get((service, user))
    def set_password(self, service, user, value): self.values[(service, user)] = value
    def delete_password(self, service, user): self.values.pop((service, user), None)
restore_backup(Path(sys.argv[3]), Path(sys.argv[4]), BackupKey(seed=identity.seed),
               keystore="keyring", keystore_passphrase=lambda new: "",
               keyring_backend=MemoryKeyring())
"""
)


def _timed_rss(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "child failed")
    return elapsed, int(usage.ru_maxrss) * 1024


def _make_vault(work: Path, size: int) -> tuple[Path, Identity]:
    home = work / "wallet"
    seed = os.urandom(32)
    wallet = init_wallet(home, "keyring", lambda new: "", keyring_backend=_NullKeyring(), seed=seed)
    source = work / "record.bin"
    with source.open("wb") as handle:
        for _ in range(RECORD_MIB):
            handle.write(os.urandom(MIB))
    vault = Vault(home, wallet.identity.vault_key)
    for _ in range(size // (RECORD_MIB * MIB)):
        vault.add(source)
    vault.close()
    source.unlink()
    return home, wallet.identity


class _NullKeyring:
    """Holds the benchmark wallet's seed in memory (the children get it from a file)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


def _raw_plaintext(work: Path, size: int) -> Path:
    plain = work / "raw.bin"
    with plain.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
    return plain


def _raw(src: Path, dst: Path, key: bytes, encrypt: bool) -> float:
    """Seconds to encrypt (or decrypt) ``src`` into a new file ``dst``, fsync included."""
    os.sync()
    start = time.perf_counter()
    with src.open("rb") as reader, dst.open("wb") as writer:
        if encrypt:
            stream.encrypt_stream(key, reader, writer)
        else:
            stream.decrypt_stream(key, reader, writer)
        writer.flush()
        os.fsync(writer.fileno())
    return time.perf_counter() - start


def main() -> None:
    size = (128 if QUICK else 1024) * MIB
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home, identity = _make_vault(work, size)
        seed_file = work / "seed.hex"
        fd = os.open(seed_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, identity.seed.hex().encode())
        os.close(fd)
        # Interleaved, each writing a new file after a sync, so that the page cache is in
        # about the same state for a baseline and for the operation compared with it.
        plain = _raw_plaintext(work, size)
        key = os.urandom(32)
        encrypt_s = _raw(plain, work / "raw.sealed", key, encrypt=True)
        out = work / "vault.hwbackup"
        os.sync()
        backup_s, backup_rss = _timed_rss(
            [sys.executable, "-c", _BACKUP_CHILD, str(home), str(seed_file), str(out)]
        )
        backup_bytes = out.stat().st_size
        decrypt_s = _raw(work / "raw.sealed", work / "raw.out", key, encrypt=False)
        os.sync()
        restore_s, restore_rss = _timed_rss(
            [
                sys.executable,
                "-c",
                _RESTORE_CHILD,
                str(home),
                str(seed_file),
                str(out),
                str(work / "restored"),
            ]
        )
        baseline_s, baseline_rss = _timed_rss(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {ROOT!r}); import healthwallet.backup",
            ]
        )
    mib = size / MIB
    figures = {
        "vault_mib": mib,
        "backup_file_mib": backup_bytes / MIB,
        "raw_encrypt_mib_s": mib / encrypt_s,
        "raw_decrypt_mib_s": mib / decrypt_s,
        "backup_mib_s": mib / backup_s,
        "restore_mib_s": mib / restore_s,
        "backup_vs_raw": encrypt_s / backup_s,
        "restore_vs_raw": decrypt_s / restore_s,
        "backup_peak_rss_mib": backup_rss / MIB,
        "restore_peak_rss_mib": restore_rss / MIB,
        "interpreter_baseline_rss_mib": baseline_rss / MIB,
        "child_startup_s": baseline_s,
    }
    figures["targets_met"] = {
        "backup>=50%raw": figures["backup_vs_raw"] >= 0.5,
        "restore>=50%raw": figures["restore_vs_raw"] >= 0.5,
        "backup_rss<100MiB": figures["backup_peak_rss_mib"] < 100,
        "restore_rss<100MiB": figures["restore_peak_rss_mib"] < 100,
    }
    report("backup", figures)


if __name__ == "__main__":
    main()
