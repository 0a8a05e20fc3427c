"""Grant files end to end: issue, verify, open; recipients, expiry, revocation, bad input."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import stat
import struct
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from grant_helpers import (
    DOCTOR,
    EXPIRES,
    ISSUED,
    LATER,
    PATIENT,
    RECORDS,
    STRANGER,
    issue,
    make_record,
)
from local_status import status_path

from healthwallet import grants, stream
from healthwallet.errors import (
    AccessDeniedError,
    BadInputError,
    HealthWalletError,
    VerificationError,
)
from healthwallet.httpfetch import Fetcher
from healthwallet.issued import IssuedGrants


@pytest.fixture
def registry(tmp_path: Path) -> IssuedGrants:
    """The patient's registry in a fresh wallet home, on a pinned clock."""
    return IssuedGrants(tmp_path / "patient", PATIENT, clock=lambda: ISSUED)


def verify(data: bytes, **kwargs: Any) -> grants.Verdict:
    kwargs.setdefault("now", LATER)
    kwargs.setdefault("status_source", status_path(data))  # as the doctor would type it
    return grants.verify_grant(io.BytesIO(data), **kwargs)


def open_into(data: bytes, out: Path, **kwargs: Any) -> list[grants.OpenedRecord]:
    kwargs.setdefault("now", LATER)
    kwargs.setdefault("identity", DOCTOR)
    kwargs.setdefault("status_source", status_path(data))
    return grants.open_grant(io.BytesIO(data), out_dir=out, **kwargs)


def names(verdict: grants.Verdict) -> list[str]:
    return [c.name for c in verdict.checks]


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_round_trip(registry: IssuedGrants, tmp_path: Path, fmt: str) -> None:
    grant = issue(registry, fmt)
    assert grant.data.startswith(grants.MAGIC)
    verdict = verify(grant.data)
    assert verdict.valid, verdict.to_json()
    assert names(verdict) == ["proof", "validity", "envelope", "status"]
    assert verdict.grant_id == grant.grant_id and verdict.issuer == PATIENT.did
    assert verdict.recipient == DOCTOR.did
    mine = verify(grant.data, identity=DOCTOR)
    assert mine.valid and names(mine)[-1] == "recipient"

    out = tmp_path / "opened"
    opened = open_into(grant.data, out)
    assert [o["id"] for o in opened] == [r.id for r in RECORDS]
    assert all(o["verified"] for o in opened)
    assert sorted(p.name for p in out.iterdir()) == ["empty.txt", "labs.json", "scan.pdf"]
    for record, item in zip(RECORDS, opened):
        path = Path(item["path"])
        with record.open() as original:
            assert path.read_bytes() == original.read()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_health_data_in_the_clear(registry: IssuedGrants) -> None:
    grant = issue(registry, records=[make_record("aa", b"HEMOGLOBIN 13.2 g/dL", "hiv-test.pdf")])
    assert b"HEMOGLOBIN" not in grant.data and b"hiv-test" not in grant.data


def test_wrong_recipient(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    verdict = verify(grant.data, identity=STRANGER)
    assert not verdict.valid
    assert verdict.check("recipient") == grants.Check("recipient", False, "not addressed to you")
    with pytest.raises(AccessDeniedError, match="not addressed to you"):
        verdict.raise_for_failure()
    out = tmp_path / "stranger"
    with pytest.raises(AccessDeniedError, match="not addressed to you"):
        open_into(grant.data, out, identity=STRANGER)
    assert not out.exists()


def test_expiry_skew_and_at(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    assert verify(grant.data, now=EXPIRES + timedelta(seconds=30)).valid  # within the skew
    late = verify(grant.data, now=EXPIRES + timedelta(seconds=61))
    assert not late.valid and late.check("validity") is not None
    assert "expired at" in late.check("validity").detail  # type: ignore[union-attr]
    assert not verify(grant.data, now=EXPIRES, skew=timedelta(0)).valid
    early = verify(grant.data, now=ISSUED - timedelta(minutes=5))
    assert "not valid before" in early.check("validity").detail  # type: ignore[union-attr]
    # "Was this valid at T?" — asked after it expired.
    at = verify(grant.data, now=EXPIRES + timedelta(days=30), at=ISSUED + timedelta(days=1))
    assert at.valid
    out = tmp_path / "late"
    with pytest.raises(VerificationError, match="expired"):
        open_into(grant.data, out, now=EXPIRES + timedelta(days=1))
    assert not out.exists()


def test_revoked_via_status_file(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    other = issue(registry)
    published = tmp_path / "published"
    registry.publish(published)
    status_file = next(published.glob("*.json"))
    assert verify(grant.data, status_source=str(status_file)).valid

    result = registry.revoke(grant.grant_id)
    assert result["revoked"] and not result["already_revoked"]
    assert registry.revoke(grant.grant_id)["already_revoked"]
    # The default source is the credential's own file:// URL, rewritten by revoke.
    verdict = verify(grant.data)
    assert not verdict.valid and verdict.check("status").detail == "revoked by the issuer"  # type: ignore[union-attr]
    assert verify(other.data).valid
    # An old published copy still says "not revoked"; a fresh publish says revoked.
    assert verify(grant.data, status_source=str(status_file)).valid
    registry.publish(published)
    assert not verify(grant.data, status_source=str(status_file)).valid
    out = tmp_path / "revoked"
    with pytest.raises(VerificationError, match="revoked"):
        open_into(grant.data, out)
    assert not out.exists()


def test_status_list_of_another_issuer_is_refused(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    impostor = IssuedGrants(tmp_path / "impostor", STRANGER, clock=lambda: ISSUED)
    issue(impostor)
    forged = next((tmp_path / "impostor" / "status").glob("*.json"))
    verdict = verify(grant.data, status_source=str(forged))
    assert not verdict.valid and not verdict.check("status").ok  # type: ignore[union-attr]


def test_a_file_status_list_named_by_the_grant_is_never_read(
    registry: IssuedGrants, tmp_path: Path
) -> None:
    grant = issue(registry)
    listed = status_path(grant.data)
    assert listed is not None and Path(listed).is_file()  # it is there, on this very machine
    verdict = verify(grant.data, status_source=None)
    status = verdict.check("status")
    assert not verdict.valid and status is not None
    assert status.detail.startswith("status list is on the issuer's machine only (file://")
    with pytest.raises(VerificationError, match="issuer's machine only"):
        open_into(grant.data, tmp_path / "out", status_source=None)
    assert verify(grant.data, status_source=listed).valid  # the path the doctor typed is read


# Loopback servers: the tests opt in, as `config set allow-local-urls true` does.
LOCAL = Fetcher(allow_local=True)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_revoked_via_http(tmp_path: Path, http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    registry = IssuedGrants(
        tmp_path / "patient", PATIENT, status_base_url=base, clock=lambda: ISSUED
    )
    grant = issue(registry, "jwt")
    registry.publish(root)
    verdict = verify(grant.data, transport=LOCAL)
    assert verdict.valid, verdict.to_json()
    assert base in verdict.check("status").detail  # type: ignore[union-attr]
    registry.revoke(grant.grant_id)
    assert verify(grant.data, transport=LOCAL).valid  # not yet published
    registry.publish(root)
    verdict = verify(grant.data, transport=LOCAL)
    assert not verdict.valid and verdict.check("status").detail == "revoked by the issuer"  # type: ignore[union-attr]


def test_unreachable_status_list_fails_closed(tmp_path: Path) -> None:
    registry = IssuedGrants(
        tmp_path / "patient", PATIENT, status_base_url="http://127.0.0.1:9/", clock=lambda: ISSUED
    )
    grant = issue(registry)
    verdict = verify(grant.data, transport=LOCAL)
    assert not verdict.valid and "could not be fetched" in verdict.check("status").detail  # type: ignore[union-attr]


def test_open_sanitizes_and_deduplicates_names(registry: IssuedGrants, tmp_path: Path) -> None:
    records = [
        make_record("r1", b"one", "../../etc/passwd"),
        make_record("r2", b"two", "a.txt"),
        make_record("r3", b"three", "dir\\a.txt"),
        make_record("r4", b"four", ".bashrc"),
        make_record("r5", b"five", ".."),
        make_record("r6", b"six", "bad\x00\nname"),
    ]
    grant = issue(registry, records=records)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_bytes(b"mine, keep me")
    opened = open_into(grant.data, out)
    got = {o["id"]: Path(o["path"]) for o in opened}
    assert all(p.parent == out for p in got.values())
    assert got["r1"].name == "passwd"
    assert {got["r2"].name, got["r3"].name} == {"a (2).txt", "a (3).txt"}
    assert got["r4"].name == "bashrc"
    assert got["r5"].name == "record-5"
    assert got["r6"].name == "bad__name"
    assert (out / "a.txt").read_bytes() == b"mine, keep me"
    assert got["r3"].read_bytes() == b"three"


def test_open_leaves_nothing_on_failure(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    damaged = bytearray(grant.data)
    damaged[-5] ^= 0x40  # inside the last record's ciphertext
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_bytes(b"x")
    with pytest.raises(VerificationError):
        open_into(bytes(damaged), out)
    assert [p.name for p in out.iterdir()] == ["keep"]
    fresh = tmp_path / "fresh"
    with pytest.raises(VerificationError):
        open_into(bytes(damaged), fresh)
    assert not fresh.exists()


def test_swapped_records_are_refused(registry: IssuedGrants, tmp_path: Path) -> None:
    a = make_record("ra", b"A" * 100, "a")
    b = make_record("rb", b"B" * 100, "b")
    grant = issue(registry, records=[a, b])
    length = stream.ciphertext_size(100)
    body = grant.data[: -2 * length]
    swapped = body + grant.data[-length:] + grant.data[-2 * length : -length]
    assert not verify(swapped).valid
    with pytest.raises(VerificationError):
        open_into(swapped, tmp_path / "out")


def test_commitment_mismatch_is_refused_at_issue(registry: IssuedGrants) -> None:
    good = make_record("r1", b"abc", "a")
    liar = grants.GrantRecord(
        id=good.id,
        media_type=good.media_type,
        name=good.name,
        salt=good.salt,
        commitment=hashlib.sha256(b"other").hexdigest(),
        size=good.size,
        open=good.open,
    )
    with pytest.raises(VerificationError, match="commitment"):
        issue(registry, records=[liar])
    assert registry.list_grants() == []


def test_anchor_hook(registry: IssuedGrants) -> None:
    record = RECORDS[0]
    proof = {"root": "00" * 32, "path": []}
    grant = issue(registry, anchors={record.id: proof})
    seen: list[tuple[dict[str, Any], str]] = []

    def accept(given: Any, commitment: str) -> bool:
        seen.append((dict(given), commitment))
        return True

    verdict = verify(grant.data, anchor_verifier=accept)
    assert verdict.valid and names(verdict)[-1] == "anchors"
    assert seen == [(proof, record.commitment)]

    def refuse(given: Any, commitment: str) -> None:
        raise VerificationError("root not on the ledger")

    verdict = verify(grant.data, anchor_verifier=refuse)
    assert not verdict.valid and "root not on the ledger" in verdict.check("anchors").detail  # type: ignore[union-attr]
    assert "anchors" not in names(verify(issue(registry).data))


# -- not a grant at all ---------------------------------------------------------------------------


def _header_with(value: Any) -> bytes:
    raw = json.dumps(value).encode()
    return grants.MAGIC + struct.pack(">I", len(raw)) + raw


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        grants.MAGIC,
        grants.MAGIC + b"\x00\x00",
        grants.MAGIC + struct.pack(">I", 0xFFFFFFFF) + b"{}",
        grants.MAGIC + struct.pack(">I", grants.MAX_HEADER_BYTES + 1),
        grants.MAGIC + struct.pack(">I", 100) + b"{}",
        grants.MAGIC + struct.pack(">I", 4) + b"junk",
        b"healthwallet-grant/v2\n" + bytes(10),
        b"healthwallet-share/v1\n" + bytes(10),
        _header_with([]),
        _header_with({"credential": {}, "envelope": {}}),
        _header_with({"credential": "x.y.z", "envelope": {}, "more": 1}),
        json.dumps({"credential": 1}).encode(),
    ],
)
def test_not_a_grant(data: bytes) -> None:
    with pytest.raises(BadInputError):
        verify(data)


def test_truncated_and_padded(registry: IssuedGrants) -> None:
    grant = issue(registry)
    size = len(grant.data)
    for cut in sorted({1, 10, 22, 25, 30, 200, size // 2, size - 100, size - 1}):
        with pytest.raises(BadInputError):
            verify(grant.data[:cut])
    with pytest.raises(BadInputError, match="after its last record"):
        verify(grant.data + b"\x00")


class _Pipe:
    """A read-only, non-seekable stream, like stdin."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._src.read(min(size, 1000) if size > 0 else size)


def test_streams_without_seeking(registry: IssuedGrants, tmp_path: Path) -> None:
    grant = issue(registry)
    listed = status_path(grant.data)
    assert grants.verify_grant(_Pipe(grant.data), now=LATER, status_source=listed).valid  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="truncated"):
        grants.verify_grant(_Pipe(grant.data[:-10]), now=LATER)  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="after its last record"):
        grants.verify_grant(_Pipe(grant.data + b"!"), now=LATER)  # type: ignore[arg-type]
    out = tmp_path / "piped"
    with pytest.raises(BadInputError):
        grants.open_grant(_Pipe(grant.data[:-10]), DOCTOR, out, now=LATER, status_source=listed)  # type: ignore[arg-type]
    assert not out.exists()
    opened = grants.open_grant(_Pipe(grant.data), DOCTOR, out, now=LATER, status_source=listed)  # type: ignore[arg-type]
    assert len(opened) == len(RECORDS)


def test_issue_refuses_bad_requests(registry: IssuedGrants) -> None:
    out = io.BytesIO()
    with pytest.raises(HealthWalletError):
        registry.issue(out, RECORDS, "did:web:example.org", purpose="x", expires=EXPIRES)
    with pytest.raises(HealthWalletError):
        registry.issue(out, [], DOCTOR.did, purpose="x", expires=EXPIRES)
    with pytest.raises(HealthWalletError):
        registry.issue(out, RECORDS, DOCTOR.did, purpose="x", expires=ISSUED - timedelta(days=1))
    with pytest.raises(HealthWalletError):
        registry.issue(out, [RECORDS[0], RECORDS[0]], DOCTOR.did, purpose="x", expires=EXPIRES)
    assert out.getvalue() == b""
    assert registry.list_grants() == []


def test_anchor_proofs_use_the_anchors_module_by_default(registry: IssuedGrants) -> None:
    grant = issue(registry, anchors={RECORDS[0].id: {"root": "00" * 32, "ledger": "local"}})
    verdict = verify(grant.data)
    anchors = verdict.check("anchors")
    assert anchors is not None and not anchors.ok and not verdict.valid
    assert RECORDS[0].id in anchors.detail


def _reframe(data: bytes, edit: Any) -> bytes:
    """Rebuild a grant after editing its header (a well-framed forgery)."""
    from healthwallet.envelope import canonical_json

    start = len(grants.MAGIC) + 4
    (length,) = struct.unpack(">I", data[len(grants.MAGIC) : start])
    header = json.loads(data[start : start + length])
    edit(header)
    raw = canonical_json(header)
    return grants.MAGIC + struct.pack(">I", len(raw)) + raw + data[start + length :]


@pytest.mark.parametrize("spelling", ["z", "+00:00"])
def test_regression_proof_created_respelled_is_refused(
    registry: IssuedGrants, spelling: str
) -> None:
    # didkit re-reads `created` as a date-time, so "…00z" verified like "…00Z": a changed
    # byte that the signature did not see (found by the byte-flip test).
    grant = issue(registry)

    def respell(header: dict[str, Any]) -> None:
        proof = header["credential"]["proof"]
        proof["created"] = proof["created"][:-1] + spelling

    verdict = verify(_reframe(grant.data, respell))
    proof = verdict.check("proof")
    assert not verdict.valid and proof is not None and "proof.created" in proof.detail


def test_reframed_envelope_edit_is_caught(registry: IssuedGrants) -> None:
    grant = issue(registry)

    def swap_meta(header: dict[str, Any]) -> None:
        header["envelope"]["records"][0]["meta"] = header["envelope"]["records"][1]["meta"]

    verdict = verify(_reframe(grant.data, swap_meta))
    assert not verdict.valid and not verdict.check("envelope").ok  # type: ignore[union-attr]
