"""Large records through the CLI, against the physical limit measured in the same run (issue 14).

Run: .venv/bin/python benchmarks/bench_cli_io.py [--big MIB] [--small MIB] [--runs N]

The user runs the CLI, so each operation is timed as a whole `healthwallet` process. Process
start and unlock cancel out by timing a big and a small input and dividing the size difference
by the time difference (medians of --runs). The physical limit is, per operation:
- `record add`: libsodium secretstream encryption + writing the ciphertext in the wallet's
  folder + fsync (best of --runs);
- `record show --out`, `open --out`: reading the ciphertext + decryption + writing + fsync;
- `backup`, `restore`: the same as `record add` (one encrypted copy of every byte is written).
Goals: every operation >= 0.8x its limit; the peak RSS of a big `record add` stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import peak_rss_of, report

from healthwallet import stream

MIB = 1024 * 1024
CHUNK = 4 * MIB


def _write_random(path: Path, size_mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(block)
    os.sync()


def _limit_encrypt(src: Path, dst_dir: Path) -> float:
    """Seconds to encrypt ``src`` with secretstream, write it beside the wallet and fsync."""
    key = os.urandom(stream.KEY_BYTES)
    dst = dst_dir / "limit.bin"
    start = time.perf_counter()
    with src.open("rb") as reader, dst.open("wb") as writer:
        stream.encrypt_stream(key, reader, writer, b"bench", None)
        writer.flush()
        os.fsync(writer.fileno())
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def _limit_decrypt(src: Path, dst_dir: Path) -> float:
    """Seconds to read ciphertext, decrypt it with secretstream, write the plaintext, fsync."""
    key = os.urandom(stream.KEY_BYTES)
    sealed = dst_dir / "sealed.bin"
    with src.open("rb") as reader, sealed.open("wb") as writer:
        stream.encrypt_stream(key, reader, writer, b"bench", None)
    os.sync()
    out = dst_dir / "plain.bin"
    start = time.perf_counter()
    with sealed.open("rb") as reader, out.open("wb") as writer:
        for chunk in stream.decrypt_chunks(key, reader, b"bench"):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    elapsed = time.perf_counter() - start
    sealed.unlink()
    out.unlink()
    return elapsed


def _cli(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "healthwallet", *args], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=288)
    parser.add_argument("--small", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hw-bench-io-"))
    env = dict(os.environ, HEALTHWALLET_HOME=str(work / "wallet"),
               HEALTHWALLET_PASSPHRASE="benchmark passphrase, not a real one",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-m", "healthwallet", "init", "--keystore", "file"],
                   env=env, check=True, capture_output=True)
    inputs = {}
    for name, size in (("big", options.big), ("small", options.small)):
        inputs[name] = work / f"{name}.bin"
        _write_random(inputs[name], size)
    delta = (options.big - options.small) * MIB

    limit_enc = min(_limit_encrypt(inputs["big"], work) - _limit_encrypt(inputs["small"], work)
                    for _ in range(options.runs))
    limit_dec = min(_limit_decrypt(inputs["big"], work) - _limit_decrypt(inputs["small"], work)
                    for _ in range(options.runs))
    figures: dict[str, float | int] = {
        "big_mib": options.big, "small_mib": options.small,
        "limit_encrypt_write_fsync_mib_s": delta / limit_enc / MIB,
        "limit_read_decrypt_write_fsync_mib_s": delta / limit_dec / MIB,
    }

    def timed(op: str, limit_seconds: float, run: Callable[[str], float]) -> None:
        big = statistics.median([run("big") for _ in range(options.runs)])
        small = statistics.median([run("small") for _ in range(options.runs)])
        seconds = max(big - small, 1e-9)
        figures[f"{op}_mib_s"] = delta / seconds / MIB
        figures[f"{op}_ratio"] = limit_seconds / seconds  # 1.0 = at the physical limit

    ids: dict[str, str] = {}

    def add(name: str) -> float:
        return _cli(env, "record", "add", str(inputs[name]), "--label", name)

    timed("record_add", limit_enc, add)
    listed = subprocess.run([sys.executable, "-m", "healthwallet", "record", "list", "--json"],
                            env=env, check=True, capture_output=True).stdout
    for record in json.loads(listed)["records"]:
        ids[record["label"]] = record["id"]

    def show(name: str) -> float:
        out = work / f"shown-{name}.bin"
        elapsed = _cli(env, "record", "show", ids[name], "--out", str(out))
        out.unlink()
        return elapsed

    timed("record_show_out", limit_dec, show)
    figures["record_add_peak_rss_mib"] = peak_rss_of(
        [sys.executable, "-m", "healthwallet", "record", "add", str(inputs["big"])], env=env
    ) / MIB
    report("cli_io", figures)


if __name__ == "__main__":
    main()
