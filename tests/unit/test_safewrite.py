"""The safe writer: unpredictable O_EXCL|O_NOFOLLOW temp names, placement, and sweeping."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest

from healthwallet.errors import StorageError, UsageError
from healthwallet.safewrite import OutputDir, atomic_write_bytes, sweep_journal


def counting_random() -> object:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def test_symlink_or_fifo_planted_at_the_temp_name_is_never_opened(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    # With a predictable generator the first names are known: plant a link and a FIFO there.
    session = (0).to_bytes(8, "big").hex()
    (out / f".tmp-hw-{session}.lock").symlink_to(victim)
    with OutputDir(out, random_bytes=counting_random(), sweep=False) as target:  # type: ignore[arg-type]
        target.write_bytes("final", b"content", mode=0o640)
    assert victim.read_bytes() == b"keep me"
    assert (out / "final").read_bytes() == b"content"
    assert stat.S_IMODE((out / "final").stat().st_mode) == 0o640
    assert sorted(p.name for p in out.iterdir()) == [".tmp-hw-0000000000000000.lock", "final"]


def test_temp_files_are_private_from_creation(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with OutputDir(tmp_path) as target:
            name, handle = target.new_temp()
            with handle:
                assert stat.S_IMODE(os.fstat(handle.fileno()).st_mode) == 0o600
            target.discard(name)
    finally:
        os.umask(old)
    assert list(tmp_path.iterdir()) == []


def test_a_dead_session_is_swept_and_a_live_one_is_not(tmp_path: Path) -> None:
    live = OutputDir(tmp_path)
    name, handle = live.new_temp()
    handle.write(b"plaintext in flight")
    handle.close()
    # a killed session: its lock file exists but nobody holds it
    dead = "1111111111111111"
    (tmp_path / f".tmp-hw-{dead}.lock").write_bytes(b"")
    (tmp_path / f".tmp-hw-{dead}-2222222222222222").write_bytes(b"left by a kill")
    (tmp_path / f".tmp-hw-{dead}-3333333333333333.d").mkdir()
    # a session whose lock is gone entirely
    (tmp_path / ".tmp-hw-4444444444444444-5555555555555555").write_bytes(b"orphan")
    # names that only look alike, and links, are not ours to remove
    (tmp_path / ".tmp-hw-6666666666666666-7777777777777777").symlink_to(tmp_path / name)
    (tmp_path / ".tmp-hw-notours").write_bytes(b"")
    with OutputDir(tmp_path) as sweeper:
        assert sweeper.swept == 4
    left = sorted(p.name for p in tmp_path.iterdir())
    assert name in left and (tmp_path / name).read_bytes() == b"plaintext in flight"
    assert ".tmp-hw-6666666666666666-7777777777777777" in left
    assert ".tmp-hw-notours" in left
    assert not any(dead in n or "4444" in n for n in left)
    live.close()
    assert name not in {p.name for p in tmp_path.iterdir()}


def test_place_new_never_replaces_and_place_never_follows(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").symlink_to(victim)
    with OutputDir(out) as target:
        temp, handle = target.new_temp()
        handle.close()
        assert target.place_new(temp, ["a", "b"]) == "b"
        temp, handle = target.new_temp()
        handle.write(b"new")
        handle.close()
        target.place(temp, "a")
    assert victim.read_bytes() == b"keep me"
    assert (out / "a").read_bytes() == b"new" and not (out / "a").is_symlink()


def test_wallet_folders_that_are_links_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(StorageError, match="symbolic link"):
        OutputDir(tmp_path / "link", symlinks="refuse", what="the blob folder")
    with pytest.raises(UsageError):
        atomic_write_bytes(tmp_path / "real" / "..", b"x")


def test_the_journal_lets_any_command_sweep_a_dead_session_elsewhere(tmp_path: Path) -> None:
    journal = tmp_path / "home" / ".tmp-outputs"
    out = tmp_path / "out"
    out.mkdir()
    live = OutputDir(out, journal=journal)
    live_temp, handle = live.new_temp()
    handle.close()
    # a session killed after it wrote: its journal entry and its files, nobody holding locks
    dead = "abababababababab"
    (journal / f"{dead}.where").write_bytes(os.fsencode(str(out)))
    (out / f".tmp-hw-{dead}.lock").write_bytes(b"")
    (out / f".tmp-hw-{dead}-cdcdcdcdcdcdcdcd").write_bytes(b"plaintext")
    assert sweep_journal(journal) == 2
    assert sorted(p.name for p in out.iterdir() if dead in p.name) == []
    assert (out / live_temp).exists()
    assert sorted(p.name for p in journal.iterdir()) == [f"{live._session}.where"]
    live.close()
    assert list(journal.iterdir()) == [] and list(out.iterdir()) == []
