"""Research ingest streams: one bad share never stops a batch, memory does not follow share size."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import ingest, patient_resources, read_dataset, reframe, share_file
from local_status import local_lists
from share_helpers import LATER, OTHER_GROUP, RESEARCH


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four good shares of look-alike patients and one large share (several 64 KiB chunks)."""
    root = tmp_path_factory.mktemp("batch")
    good = [share_file(root, n, patient_resources(n)) for n in range(4)]
    big = share_file(root, 50, patient_resources(50, observations=800))
    elsewhere = share_file(root, 51, patient_resources(51), recipient=OTHER_GROUP)
    spare = share_file(root, 52, patient_resources(52))
    return {"root": root, "good": good, "big": big, "elsewhere": elsewhere, "spare": spare}


def _variant(root: Path, name: str, data: bytes) -> Path:
    path = root / f"{name}.hwshare"
    path.write_bytes(data)
    return path


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_one_bad_share_never_aborts_the_batch(batch: dict[str, Any], tmp_path: Path) -> None:
    big = batch["big"].read_bytes()
    good = batch["spare"].read_bytes()

    def edit_subject(header: dict[str, Any]) -> None:
        header["credential"]["credentialSubject"]["purpose"] = "something else"

    def confuse_type(header: dict[str, Any]) -> None:
        header["credential"]["type"] = ["VerifiableCredential", {"a": 1}]

    def deep_subject(header: dict[str, Any]) -> None:
        header["credential"]["credentialSubject"]["dataCategories"] = _deep(900)

    bad = {
        "bad-signature": reframe(good, edit_subject),
        "type-confused": reframe(good, confuse_type),
        "deeply-nested": reframe(good, deep_subject),
        "damaged-at-the-end": big[:-1] + bytes([big[-1] ^ 1]),
        "damaged-in-the-middle": big[: len(big) // 2] + b"\0" + big[len(big) // 2 + 1 :],
        "truncated": big[:-100],
        "padded": big + b"\n",
    }
    files = [
        *batch["good"][:2],
        *(_variant(tmp_path, name, data) for name, data in bad.items()),
        batch["elsewhere"],
        *batch["good"][2:],
    ]
    result = ingest(files, RESEARCH, tmp_path / "out", k=2, now=LATER)

    assert result.accepted == 4 and result.outcome == "written"
    reasons = {Path(r.file).stem: r.reason for r in result.rejected}
    assert set(reasons) == {*bad, "share-51"}
    assert reasons["share-51"] == "wrong-recipient"
    assert reasons["bad-signature"] == "bad-proof"
    assert reasons["damaged-at-the-end"] == "dataset-mismatch"
    assert reasons["damaged-in-the-middle"] in {"dataset-mismatch", "not-a-share"}
    dataset = read_dataset(tmp_path / "out")
    # Nothing from the large share survives, though its first chunks decrypted fine.
    assert len(dataset["Observation"]) == 4 * 3 and len(dataset["Patient"]) == 4


@pytest.mark.parametrize("where", [0.0, 0.01, 0.05, 0.2, 0.5, 0.8, 0.99, 1.0])
def test_mutated_share_is_rejected_and_the_rest_go_on(
    batch: dict[str, Any], tmp_path: Path, where: float
) -> None:
    data = bytearray(batch["big"].read_bytes())
    offset = min(int(len(data) * where), len(data) - 1)
    data[offset] ^= 0x5A
    mutated = _variant(tmp_path, "mutated", bytes(data))
    result = ingest([mutated, *batch["good"][:2]], RESEARCH, tmp_path / "out", k=1, now=LATER)
    assert result.accepted == 2
    assert [r.input for r in result.rejected] == [1]


def test_memory_does_not_follow_the_size_of_a_share(tmp_path: Path) -> None:
    """Python-side peak while ingesting a ~6 MiB share of small resources (was ~20x the share)."""
    path = share_file(tmp_path, 1, patient_resources(1, observations=24_000))
    size = path.stat().st_size
    assert size > 5_000_000
    sources = local_lists([path])  # read before tracing: not part of the ingest's peak
    tracemalloc.start()
    try:
        result = ingest([path], RESEARCH, tmp_path / "out", k=1, now=LATER, status_sources=sources)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.resources == 24_001
    assert peak < size  # buffers of a few MiB, never the share (or its resources) at once
