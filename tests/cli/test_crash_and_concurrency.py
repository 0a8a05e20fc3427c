"""The vault survives SIGKILL at any moment, and concurrent writers lose nothing."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import Cli


def _spawn(wallet: Cli, *args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "healthwallet", *map(str, args)],
                            env=wallet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_during_add_never_damages_the_vault(wallet: Cli, tmp_path: Path) -> None:
    rng = random.Random(20261122)
    sources = []
    for i in range(3):
        path = tmp_path / f"scan{i}.pdf"
        path.write_bytes(b"%PDF-1.7\n" + rng.randbytes(1_500_000 + i * 700_000))
        sources.append(path)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    # Time one whole import first, so the kills land inside it on a fast or slow machine.
    start = time.perf_counter()
    probe = _spawn(wallet, "record", "add", *sources)
    probe_out, _ = probe.communicate(timeout=120)
    assert probe.returncode == 0
    duration = time.perf_counter() - start
    reported: list[str] = [line.split()[1] for line in probe_out.decode().splitlines()
                           if line.startswith("added ")]
    completed = killed = attempts = 0
    # At least 30 runs; more (up to 90) until at least 10 were killed mid-way.
    while attempts < 30 or (killed < 10 and attempts < 90):
        attempts += 1
        proc = _spawn(wallet, "record", "add", *sources, "--allow-duplicate")
        time.sleep(rng.uniform(0.0, duration))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        if proc.returncode == 0:
            completed += 1
        else:
            assert proc.returncode == -signal.SIGKILL
            killed += 1
        reported += [line.split()[1] for line in out.decode().splitlines() if line.startswith("added ")]
    assert killed >= 10, "the kills should land mid-write most of the time"
    doctor = wallet("doctor", "--json")
    assert doctor.code == 0, doctor
    assert doctor.json()["ok"] is True
    listed = {r["id"] for r in wallet.ok("record", "list", "--json").json()["records"]}
    assert set(reported) <= listed
    for record_id in reported:
        out = tmp_path / "check"
        wallet.ok("record", "show", record_id, "--out", out)
        assert hashlib.sha256(out.read_bytes()).hexdigest() in digests
    # nothing half-written remains once a writer has run
    assert not [p for p in (wallet.home / "blobs").iterdir() if p.name.startswith(".tmp")]
    assert {p.name for p in (wallet.home / "blobs").iterdir()} == listed


def test_concurrent_adders_lose_nothing(wallet: Cli, tmp_path: Path) -> None:
    expected: dict[str, bytes] = {}
    procs = []
    for writer in range(4):
        files = []
        for i in range(5):
            path = tmp_path / f"w{writer}-{i}.pdf"
            content = f"%PDF-1.4 writer {writer} file {i}\n".encode() * (200 + i)
            path.write_bytes(content)
            files.append(path)
        procs.append((_spawn(wallet, "record", "add", *files, "--json"), files))
    for proc, files in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        import json
        for record, path in zip(json.loads(out)["records"], files, strict=True):
            expected[record["id"]] = path.read_bytes()
    listed = wallet.ok("record", "list", "--json").json()["records"]
    assert len(listed) == 20 and {r["id"] for r in listed} == set(expected)
    for record_id, content in expected.items():
        out = tmp_path / "check"
        wallet.ok("record", "show", record_id, "--out", out)
        assert out.read_bytes() == content
