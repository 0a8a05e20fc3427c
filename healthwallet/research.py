"""Research ingest: verify many patients' shares, merge them, enforce k-anonymity, write NDJSON.

A research group runs this with its own wallet. Each share file is checked on its own (consent
proof, validity window on our clock, withdrawal via the patient's status list, addressed to this
group, the study, the dataset digest) and then decrypted; a file that fails is left out and
reported with a reason, and never stops the others. Shares from one patient (one issuer DID)
are one patient. k-anonymity is judged over all patients (healthwallet.deid.k_anonymize), and
the result is written as ``<ResourceType>.ndjson`` files plus ``report.json``, all at once: the
output directory appears complete or not at all. Patient DIDs and share file names never go
into the output directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import keys
from .deid import k_anonymize, quasi_identifiers
from .errors import (
    BadInputError,
    HealthWalletError,
    NotFoundError,
    UsageError,
)
from .safewrite import OutputDir
from .shares import (
    DEFAULT_SKEW,
    ShareVerdict,
    StatusLists,
    canonical_json,
    check_credential,
    check_study,
    consent_checks,
    decrypt_dataset,
    read_share_header,
)

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
        }


@dataclass
class _Patient:
    resources: list[dict[str, Any]] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)
    shares: int = 0

    def add(self, resources: list[dict[str, Any]]) -> None:
        self.shares += 1
        for resource in resources:
            fingerprint = canonical_json(resource)
            if fingerprint not in self.seen:  # a later share repeats what an earlier one had
                self.seen.add(fingerprint)
                self.resources.append(resource)


def _patient_key(
    aliases: dict[str, str],
    issuer: str,
    resources: list[dict[str, Any]],
) -> str:
    """Which patient a share belongs to: its issuer, or a patient it shares a Patient id with.

    A patient who rotated keys signs later consents with a new DID, but the study's
    pseudonyms stay the same, so their Patient ids link the shares. Merging can only lower
    the patient count, which keeps the k-anonymity check on the safe side.
    """
    patient_ids = {
        f"Patient/{r['id']}"
        for r in resources
        if r.get("resourceType") == "Patient" and isinstance(r.get("id"), str)
    }
    key = aliases.get(issuer) or next(
        (aliases[pid] for pid in sorted(patient_ids) if pid in aliases), issuer
    )
    for alias in (issuer, *patient_ids):
        aliases.setdefault(alias, key)
    return key


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
    if out_dir.exists() or out_dir.is_symlink():
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
) -> IngestResult:
    """Verify, decrypt and merge shares addressed to ``identity``; write a k-anonymous dataset.

    Nothing is written when no share is accepted. Raises only for the caller's own mistakes
    (bad k or quasi-identifiers, missing inputs, a non-empty ``out_dir``, an unusable
    ``status_sources`` entry); every problem with a share file is a :class:`Rejection`.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError("k must be a positive whole number", "e.g. --k 5")
    quasi_list = list(quasi) if quasi else None
    quasi_identifiers([], quasi_list)  # refuses unknown quasi-identifiers before any work
    if study is not None:
        check_study(study)
    _check_inputs(share_files)
    _check_out_dir(out_dir)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    status = StatusLists(status_sources, transport=transport)

    rejected: list[Rejection] = []
    patients: dict[str, _Patient] = {}
    aliases: dict[str, str] = {}  # issuer DID or Patient id -> patient key
    accepted_ids: set[str] = set()
    policies: dict[tuple[str, str], int] = {}
    expected_study = study
    for number, path in enumerate(share_files, start=1):
        try:
            handle = path.open("rb")
        except OSError as exc:
            _reject(rejected, number, path, None, "unreadable", f"cannot read ({exc.strerror})")
            continue
        with handle:
            try:
                share = read_share_header(handle)
                proof, claims = check_credential(share)
            except HealthWalletError as exc:
                _reject(rejected, number, path, None, "not-a-share", exc.message)
                continue
            if claims.id in accepted_ids:
                _reject(rejected, number, path, claims.id, "duplicate", "the same share twice")
                continue
            checks = consent_checks(
                claims,
                proof,
                my_did=identity.did,
                study=expected_study,
                status=status,
                now=moment,
                skew=skew,
            )
            failure = ShareVerdict(claims, checks).failure()
            if failure is not None:
                _reject(rejected, number, path, claims.id, failure.reason, failure.detail)
                continue
            try:
                handle.seek(share.payload_offset)
                resources = decrypt_dataset(share, claims, handle, identity)
            except (HealthWalletError, OSError) as exc:
                detail = exc.message if isinstance(exc, HealthWalletError) else "cannot read"
                _reject(rejected, number, path, claims.id, "dataset-mismatch", detail)
                continue
        accepted_ids.add(claims.id)
        expected_study = expected_study or claims.study
        patients.setdefault(_patient_key(aliases, claims.issuer, resources), _Patient()).add(
            resources
        )
        key = (claims.policy, "sha256:" + claims.policy_digest)
        policies[key] = policies.get(key, 0) + 1

    if not patients:
        return IngestResult(
            out=out_dir,
            study=expected_study,
            accepted=0,
            patients=0,
            resources=0,
            suppressed=0,
            k=0,
            k_requested=k,
            rejected=tuple(rejected),
        )

    groups = [p.resources for p in patients.values()]
    kanon = k_anonymize(
        groups, quasi_list, k, now=moment, generalize=True, max_suppression=max_suppression
    )
    by_type: dict[str, list[bytes]] = {}
    for records in kanon.kept:
        for resource in records:
            by_type.setdefault(str(resource["resourceType"]), []).append(canonical_json(resource))
    resource_count = sum(len(lines) for lines in by_type.values())
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "created": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "study": expected_study,
        "patients": len(kanon.kept),
        "patients_received": len(groups),
        "resources": resource_count,
        "resource_types": {name: len(lines) for name, lines in sorted(by_type.items())},
        "suppressed": len(kanon.suppressed),
        "suppression_reasons": kanon.report.get("suppression_reasons", []),
        "k": {"requested": k, "achieved": kanon.k_achieved},
        "k_anonymity": kanon.report,
        "consents": {
            "files": len(share_files),
            "accepted": len(accepted_ids),
            "rejected": [r.to_json(with_file=False) for r in rejected],
        },
        "policies": [
            {"policy": name, "policy_digest": digest, "shares": count}
            for (name, digest), count in sorted(policies.items())
        ],
    }
    files = {
        f"{name}.ndjson": b"".join(line + b"\n" for line in lines)
        for name, lines in by_type.items()
    }
    files[REPORT_FILE] = canonical_json(report) + b"\n"
    _write_all(out_dir, files, random_bytes)
    return IngestResult(
        out=out_dir,
        study=expected_study,
        accepted=len(accepted_ids),
        patients=len(kanon.kept),
        resources=resource_count,
        suppressed=len(kanon.suppressed),
        k=kanon.k_achieved,
        k_requested=k,
        rejected=tuple(rejected),
        files=tuple(sorted(files)),
        report=report,
    )


def _write_all(out_dir: Path, files: dict[str, bytes], random_bytes: RandomBytes) -> None:
    """Write every file into a private temp directory beside ``out_dir``, then rename it."""
    with OutputDir(out_dir.parent, create=True, random_bytes=random_bytes) as parent:
        tmp = parent.new_temp_dir()
        with OutputDir(
            parent.sub_path(tmp), symlinks="refuse", sweep=False, what="the dataset"
        ) as staged:
            for name, content in sorted(files.items()):
                staged.write_bytes(name, content)
        _check_out_dir(out_dir)  # still missing or empty: replace it
        parent.place(tmp, out_dir.name)
