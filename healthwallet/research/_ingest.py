"""Research ingest: verify many patients' shares, merge them, enforce k-anonymity, write NDJSON.

A research group runs this with its own wallet. Each share file is checked on its own (consent
proof, validity window on our clock, withdrawal via the patient's status list, addressed to this
group, the study, the dataset digest) and then decrypted as a stream into a DuckDB spill store
in a private work directory; a file that fails is left out and reported with a reason, and
never stops the others. Memory holds one share's current line and a few MiB of buffered rows,
whatever the number or size of the shares. Shares linked by an issuer DID or a Patient id are
one patient. k-anonymity is planned in DuckDB over all patients, the resources are rewritten
at the chosen level in an order no reader can invert (a keyed hash with a per-run random key),
and k is computed again on what was written. ``<ResourceType>.ndjson`` files and
``report.json`` go into a private temporary directory renamed into place at the end: the
output directory appears complete or not at all. Patient DIDs and share file names never go
into it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from .. import keys
from ..deid._kanon import LADDER, Rewrite, check_quasi, generalize_resource, resource_facts
from ..deid._kgroup import check_k, insert_facts, plan, suppression_reasons, written_classes
from ..deid._policy import restricted_zip3
from ..errors import (
    BadInputError,
    HealthWalletError,
    InternalError,
    NotFoundError,
    StorageError,
    UsageError,
)
from ..fsutil import fsync_dir, open_private, storage_error
from ..safewrite import OutputDir
from ..shares import (
    DEFAULT_SKEW,
    ConsentClaims,
    ShareVerdict,
    StatusLists,
    canonical_json,
    check_credential,
    check_study,
    consent_checks,
    read_share_header,
)
from ._output import DatasetWriter
from ._reader import stream_dataset
from ._store import Store

REPORT_FORMAT = "healthwallet-research-report/v1"
REPORT_FILE = "report.json"
DEFAULT_MAX_SUPPRESSION = 0.05

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class Rejection:
    """A share file left out of the dataset, and why (a reason code and a short detail)."""

    input: int
    file: str
    share_id: str | None
    reason: str
    detail: str

    def to_json(self, with_file: bool = True) -> dict[str, Any]:
        """The rejection as a JSON value (``with_file=False`` for files that travel)."""
        value: dict[str, Any] = {"input": self.input, "share_id": self.share_id}
        if with_file:
            value["file"] = self.file
            value["detail"] = self.detail
        value["reason"] = self.reason
        return value


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did: counts, k, the rejections, and the files written."""

    out: Path
    study: str | None
    accepted: int
    patients: int
    resources: int
    suppressed: int
    k: int
    k_requested: int
    rejected: tuple[Rejection, ...]
    files: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)
    outcome: str = "written"
    """``written``, ``no-share`` (nothing accepted) or ``k-not-met`` (no class reaches k)."""

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {
            "patients": self.patients,
            "resources": self.resources,
            "suppressed": self.suppressed,
            "k": self.k,
            "k_requested": self.k_requested,
            "accepted": self.accepted,
            "study": self.study,
            "rejected": [r.to_json() for r in self.rejected],
            "out": str(self.out) if self.files else None,
            "files": list(self.files),
            "outcome": self.outcome,
        }


def _check_inputs(share_files: Sequence[Path]) -> None:
    if not share_files:
        raise UsageError("give at least one share file")
    for path in share_files:
        try:
            if path.is_dir():
                raise BadInputError("an input is a directory", "pass the .hwshare files in it")
            if not path.exists():
                raise NotFoundError("a share file does not exist", f"check the path: {path.name}")
        except OSError as exc:
            raise BadInputError(f"cannot read a share file ({exc.strerror})") from None


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.is_symlink():
        raise UsageError("--out is a symbolic link; nothing was written", "give a new directory")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError("--out exists and is not a directory", "give a new directory")
        if any(out_dir.iterdir()):
            raise UsageError(
                "--out is not empty; nothing was written",
                "give a new or empty directory (an ingest never mixes with older output)",
            )


def _reject(
    rejected: list[Rejection],
    number: int,
    path: Path,
    share_id: str | None,
    reason: str,
    detail: str,
) -> None:
    rejected.append(Rejection(number, str(path), share_id, reason, detail))


@dataclass
class _Batch:
    """What the shares read so far add up to (small: no resource is held here)."""

    rejected: list[Rejection] = field(default_factory=list)
    accepted: int = 0
    study: str | None = None
    policies: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Settings:
    identity: keys.Identity
    status: StatusLists
    now: datetime
    skew: timedelta
    base: Rewrite


def _read_one(
    store: Store, number: int, path: Path, batch: _Batch, settings: _Settings
) -> tuple[str | None, str, str] | None:
    """Read share ``number`` into the store; (share id, reason, detail) when it is rejected."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        return None, "unreadable", f"cannot read ({exc.strerror})"
    with handle:
        try:
            share = read_share_header(handle)
            proof, claims = check_credential(share)
        except HealthWalletError as exc:
            return None, "not-a-share", exc.message
        if store.is_duplicate(claims.id):
            return claims.id, "duplicate", "the same share twice"
        checks = consent_checks(
            claims,
            proof,
            my_did=settings.identity.did,
            study=batch.study,
            status=settings.status,
            now=settings.now,
            skew=settings.skew,
        )
        failure = ShareVerdict(claims, checks).failure()
        if failure is not None:
            return claims.id, failure.reason, failure.detail
        try:
            handle.seek(share.payload_offset)
            _spill(
                store,
                number,
                claims,
                stream_dataset(share, claims, handle, settings.identity),
                settings.base,
            )
        except (HealthWalletError, OSError) as exc:
            store.drop_share(number)
            detail = exc.message if isinstance(exc, HealthWalletError) else "cannot read"
            return claims.id, "dataset-mismatch", detail
    store.accept(number, claims.id)
    batch.accepted += 1
    batch.study = batch.study or claims.study
    key = (claims.policy, "sha256:" + claims.policy_digest)
    batch.policies[key] = batch.policies.get(key, 0) + 1
    return None


def _spill(store: Store, number: int, claims: ConsentClaims, resources: Any, base: Rewrite) -> None:
    store.add_alias(number, claims.issuer)
    for seq, (resource, line) in enumerate(resources):
        kind = str(resource["resourceType"])
        store.add(number, (number << 32) | seq, kind, line)
        if kind == "Patient" and isinstance(resource.get("id"), str):
            # A patient who rotated keys signs with a new DID, but the study's pseudonyms
            # stay: their Patient ids link the shares (merging only lowers the count).
            store.add_alias(number, f"Patient/{resource['id']}")
        for fact in resource_facts(resource, base.ref_year, base.restricted):
            store.add_fact(number, fact.kind, fact.text, fact.num)


def ingest(
    share_files: Sequence[Path],
    identity: keys.Identity,
    out_dir: Path,
    *,
    k: int,
    quasi: Sequence[str] | None = None,
    study: str | None = None,
    status_sources: Sequence[str] = (),
    now: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
    transport: Any = None,
    max_suppression: float = DEFAULT_MAX_SUPPRESSION,
    random_bytes: RandomBytes = os.urandom,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Verify, decrypt and merge shares addressed to ``identity``; write a k-anonymous dataset
    (``on_progress`` is told of each share file read).

    Nothing is written when no share is accepted or no patient's class reaches k (see
    ``outcome``). Raises only for the caller's own mistakes (bad k or quasi-identifiers,
    missing inputs, a non-empty ``out_dir``, an unusable ``status_sources`` entry) and for
    storage failures; every problem with a share file is a :class:`Rejection`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError("k must be a positive whole number", "e.g. --k 5")
    check_k(k, max_suppression)
    checked = check_quasi(quasi)  # refuses unknown quasi-identifiers before any work
    if study is not None:
        check_study(study)
    _check_inputs(share_files)
    _check_out_dir(out_dir)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    settings = _Settings(
        identity,
        StatusLists(status_sources, transport=transport),
        moment,
        skew,
        Rewrite(checked, LADDER[0], moment.year, frozenset(restricted_zip3())),
    )
    # Every file goes through one descriptor of --out's parent (safewrite.OutputDir): private
    # temp directories with unpredictable names, placed by rename, never through a planted link.
    with OutputDir(out_dir.parent, create=True, random_bytes=random_bytes) as parent:
        work = parent.new_temp_dir()
        try:
            store = Store(parent.sub_path(work), random_bytes(32))
            try:
                return _run(
                    store,
                    share_files,
                    out_dir,
                    parent,
                    (k, max_suppression),
                    settings,
                    study,
                    on_progress,
                )
            except duckdb.Error as exc:
                raise StorageError(
                    "the ingest's work store failed",
                    f"check free disk space ({type(exc).__name__})",
                ) from None
            finally:
                store.close()
        finally:
            parent.discard(work)


def _run(
    store: Store,
    share_files: Sequence[Path],
    out_dir: Path,
    parent: OutputDir,
    anonymity: tuple[int, float],
    settings: _Settings,
    study: str | None,
    on_progress: Callable[[int], None] | None,
) -> IngestResult:
    k, max_suppression = anonymity
    batch = _Batch(study=study)
    for number, path in enumerate(share_files, start=1):
        try:
            rejection = _read_one(store, number, path, batch, settings)
        except duckdb.Error:
            raise
        except Exception as exc:  # one hostile file never stops the batch
            store.drop_share(number)
            rejection = (None, "not-a-share", f"cannot be processed ({type(exc).__name__})")
        if rejection is not None:
            share_id, reason, detail = rejection
            batch.rejected.append(Rejection(number, str(path), share_id, reason, detail))
        if on_progress is not None:
            on_progress(1)

    def result(outcome: str, **values: Any) -> IngestResult:
        fields: dict[str, Any] = {"patients": 0, "resources": 0, "suppressed": 0, "k": 0, **values}
        return IngestResult(
            out=out_dir,
            study=batch.study,
            accepted=batch.accepted,
            k_requested=k,
            rejected=tuple(batch.rejected),
            outcome=outcome,
            **fields,
        )

    if not batch.accepted:
        return result("no-share")
    received = store.assign_units()
    base = settings.base
    chosen = plan(
        store.con,
        base.quasi,
        k,
        ref_year=base.ref_year,
        generalize=True,
        max_suppression=max_suppression,
    )
    kept = received - chosen.suppressed
    if kept == 0:
        return result("k-not-met", suppressed=chosen.suppressed)
    how = Rewrite(base.quasi, chosen.level, base.ref_year, base.restricted)
    staged = parent.new_temp_dir()
    tmp = parent.sub_path(staged)
    try:
        writer = DatasetWriter(tmp)
        try:
            for rows in store.ordered_batches():
                facts: list[tuple[int, str, str, int | None]] = []
                for unit, kind, line in rows:
                    resource = generalize_resource(json.loads(line), how)
                    writer.write(kind, resource, canonical_json(resource))
                    facts.extend(
                        (unit, f.kind, f.text, f.num)
                        for f in resource_facts(resource, how.ref_year, how.restricted)
                    )
                insert_facts(store.con, "out_facts", facts)
                writer.end_batch()
            names = writer.close()
        except BaseException:
            writer.abort()
            raise
        k_written, classes = written_classes(store.con)
        if k_written < k:
            raise InternalError("the written dataset does not reach k; nothing was written")
        report = _report(
            batch,
            settings,
            k,
            k_written,
            classes,
            received,
            kept,
            chosen,
            writer.counts,
            len(share_files),
            max_suppression,
        )
        with open_private(tmp / REPORT_FILE) as handle:
            handle.write(canonical_json(report) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        _publish(parent, staged, tmp, out_dir)
    except OSError as exc:
        parent.discard(staged)
        raise storage_error(exc, "the dataset") from None
    except BaseException:
        parent.discard(staged)
        raise
    return result(
        "written",
        patients=kept,
        resources=report["resources"],
        suppressed=chosen.suppressed,
        k=k_written,
        files=tuple(sorted([*names, REPORT_FILE])),
        report=report,
    )


def _report(
    batch: _Batch,
    settings: _Settings,
    k: int,
    k_written: int,
    classes: int,
    received: int,
    kept: int,
    chosen: Any,
    counts: dict[str, int],
    files: int,
    max_suppression: float,
) -> dict[str, Any]:
    reasons = suppression_reasons(k, chosen)
    return {
        "format": REPORT_FORMAT,
        "created": settings.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "study": batch.study,
        "patients": kept,
        "patients_received": received,
        "resources": sum(counts.values()),
        "resource_types": dict(sorted(counts.items())),
        "suppressed": chosen.suppressed,
        "suppression_reasons": reasons,
        "k": {"requested": k, "achieved": k_written},
        "k_anonymity": {
            "k": k,
            "k_achieved": k_written,
            "computed_on": "written output",
            "quasi_identifiers": list(settings.base.quasi.names),
            "patients": received,
            "kept": kept,
            "suppressed": chosen.suppressed,
            "equivalence_classes": classes,
            "generalization": {"level": chosen.number, **chosen.level.describe()},
            "levels_tried": chosen.tried,
            "suppression_reasons": reasons,
            "max_suppression": max_suppression,
            "within_max_suppression": chosen.within,
        },
        "order": "keyed-hash",
        "consents": {
            "files": files,
            "accepted": batch.accepted,
            "rejected": [r.to_json(with_file=False) for r in batch.rejected],
        },
        "policies": [
            {"policy": name, "policy_digest": digest, "shares": count}
            for (name, digest), count in sorted(batch.policies.items())
        ],
    }


def _publish(parent: OutputDir, staged: str, tmp: Path, out_dir: Path) -> None:
    """Rename the finished temporary directory to ``out_dir`` (which must still be missing or
    empty), relative to the parent's descriptor."""
    fsync_dir(tmp)
    _check_out_dir(out_dir)
    if out_dir.is_dir() and not out_dir.is_symlink():
        out_dir.rmdir()
    parent.place(staged, out_dir.name)
