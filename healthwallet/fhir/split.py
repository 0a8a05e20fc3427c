"""Splitting a FHIR Bundle or NDJSON file into one record per resource or per Patient compartment.

A Bundle is parsed in memory (at most ``filetypes.FHIR_PARSE_LIMIT``). An NDJSON file is read
twice and never held whole: the first pass checks every line and notes where each piece's lines
are (offsets only), the second reads each piece's lines back while it is encrypted. The file is
kept open between the passes, and a piece whose bytes changed in between is refused.

Patient compartments follow FHIR R4 (4.0.1) CompartmentDefinition/patient: a resource belongs to
the Patient that its compartment elements (``_COMPARTMENT``) refer to, a Patient to itself.
Resources in no compartment (Practitioner, Organization, Medication …) and resources that refer
to several patients at once go to one remainder piece, "no patient". Links between Patient
resources are not followed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from .. import jsonutil
from ..addhooks import PreparedContent
from ..errors import BadInputError, UsageError
from . import ndjson
from ._summary import Tally

MODES = ("resource", "patient")
MAX_PIECES = 100_000
"""Most records one file may split into; more is refused before anything is added."""
BUNDLE_LIMIT = 512 * 1024 * 1024
"""Largest Bundle split (it is parsed in memory); NDJSON has no total limit."""
JSON_MEDIA_TYPE = "application/fhir+json"
REMAINDER = "no patient"

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]*)?$")

# Element paths, per resource type, of the search parameters that put a resource in a Patient's
# compartment (FHIR R4 CompartmentDefinition/patient, each parameter's expression). A path is a
# tuple of element names; lists are walked through.
_COMPARTMENT: dict[str, tuple[tuple[str, ...], ...]] = {
    "Account": (("subject",),),
    "AdverseEvent": (("subject",),),
    "AllergyIntolerance": (("patient",), ("recorder",), ("asserter",)),
    "Appointment": (("participant", "actor"),),
    "AppointmentResponse": (("actor",),),
    "AuditEvent": (("agent", "who"), ("entity", "what")),
    "Basic": (("subject",), ("author",)),
    "BodyStructure": (("patient",),),
    "CarePlan": (("subject",), ("activity", "detail", "performer")),
    "CareTeam": (("subject",), ("participant", "member")),
    "ChargeItem": (("subject",),),
    "Claim": (("patient",), ("payee", "party")),
    "ClaimResponse": (("patient",),),
    "ClinicalImpression": (("subject",),),
    "Communication": (("subject",), ("sender",), ("recipient",)),
    "CommunicationRequest": (("subject",), ("sender",), ("recipient",), ("requester",)),
    "Composition": (("subject",), ("author",), ("attester", "party")),
    "Condition": (("subject",), ("asserter",)),
    "Consent": (("patient",),),
    "Coverage": (("policyHolder",), ("subscriber",), ("beneficiary",), ("payor",)),
    "CoverageEligibilityRequest": (("patient",),),
    "CoverageEligibilityResponse": (("patient",),),
    "DetectedIssue": (("patient",),),
    "DeviceRequest": (("subject",), ("performer",)),
    "DeviceUseStatement": (("subject",),),
    "DiagnosticReport": (("subject",),),
    "DocumentManifest": (("subject",), ("author",), ("recipient",)),
    "DocumentReference": (("subject",), ("author",)),
    "Encounter": (("subject",),),
    "EnrollmentRequest": (("candidate",),),
    "EpisodeOfCare": (("patient",),),
    "ExplanationOfBenefit": (("patient",), ("payee", "party")),
    "FamilyMemberHistory": (("patient",),),
    "Flag": (("subject",),),
    "Goal": (("subject",),),
    "Group": (("member", "entity"),),
    "ImagingStudy": (("subject",),),
    "Immunization": (("patient",),),
    "ImmunizationEvaluation": (("patient",),),
    "ImmunizationRecommendation": (("patient",),),
    "Invoice": (("subject",), ("recipient",)),
    "List": (("subject",), ("source",)),
    "MeasureReport": (("subject",),),
    "Media": (("subject",),),
    "MedicationAdministration": (("subject",), ("performer", "actor")),
    "MedicationDispense": (("subject",), ("receiver",)),
    "MedicationRequest": (("subject",),),
    "MedicationStatement": (("subject",),),
    "MolecularSequence": (("patient",),),
    "NutritionOrder": (("patient",),),
    "Observation": (("subject",), ("performer",)),
    "Person": (("link", "target"),),
    "Procedure": (("subject",), ("performer", "actor")),
    "Provenance": (("target",),),
    "QuestionnaireResponse": (("subject",), ("author",)),
    "RelatedPerson": (("patient",),),
    "RequestGroup": (("subject",), ("action", "participant")),
    "ResearchSubject": (("individual",),),
    "RiskAssessment": (("subject",),),
    "Schedule": (("actor",),),
    "ServiceRequest": (("subject",), ("performer",)),
    "Specimen": (("subject",),),
    "SupplyDelivery": (("patient",),),
    "SupplyRequest": (("deliverTo",),),
    "VisionPrescription": (("patient",),),
}


@dataclass(frozen=True)
class Piece:
    """One record a split makes: which part of the file it is, and its prepared content."""

    part: str  # "Observation/o1", "Observation #3", "Patient/p1" or "no patient"
    content: PreparedContent

    def label(self, base: str) -> str:
        """The new record's label: the file's label and the part."""
        return f"{base} · {self.part}"


def _references(value: object, path: tuple[str, ...]) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _references(item, path)
    elif isinstance(value, Mapping):
        if not path:
            reference = value.get("reference")
            if isinstance(reference, str):
                yield reference
        else:
            yield from _references(value.get(path[0]), path[1:])


def _patient_key(reference: str, aliases: Mapping[str, str]) -> str | None:
    if reference in aliases:
        return aliases[reference]
    found = _PATIENT_REFERENCE.search(reference)
    return f"Patient/{found.group(1)}" if found else None


def compartment(resource: Mapping[str, Any], aliases: Mapping[str, str] = {}) -> str | None:
    """The Patient compartment ("Patient/<id>") a resource belongs to; None when it is in none,
    or in several (its first compartment element naming several patients, or none and the
    others naming different ones). ``aliases`` maps a Bundle's fullUrls to their Patients."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        ident = resource.get("id")
        return f"Patient/{ident}" if isinstance(ident, str) and _ID.fullmatch(ident) else None
    named: list[list[str]] = []
    for path in _COMPARTMENT.get(str(kind), ()):
        keys = {_patient_key(ref, aliases) for ref in _references(resource, path)}
        named.append(sorted(k for k in keys if k is not None))
    every = {key for keys in named for key in keys}
    if len(every) == 1:
        return every.pop()
    first = next((keys for keys in named if keys), [])
    return first[0] if len(first) == 1 else None


def _part_name(resource: Mapping[str, Any], number: int) -> str:
    kind = str(resource["resourceType"])
    ident = resource.get("id")
    return (
        f"{kind}/{ident}"
        if isinstance(ident, str) and _ID.fullmatch(ident)
        else f"{kind} #{number}"
    )


def _file_name(stem: str, part: str, suffix: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-")
    return f"{stem}.{slug}{suffix}"


def _prepared(name: str, media_type: str, tally: Tally, opener: Any) -> PreparedContent:
    return PreparedContent(name, "fhir", media_type, tally.synopsis(), opener)


def _too_many() -> UsageError:
    return UsageError(
        f"the file would split into more than {MAX_PIECES} records",
        "split it by patient (--split patient), or add it whole",
    )


# -- Bundles ---------------------------------------------------------------------------------


def _dump(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _opener(value: object) -> Any:
    """Serialises ``value`` only when the piece is read (one piece's bytes in memory at a time)."""

    def opener() -> BinaryIO:
        return io.BytesIO(_dump(value))

    return opener


def _bundle_entries(bundle: Mapping[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(fullUrl, resource) of each entry that holds a FHIR resource."""
    entries = bundle.get("entry")
    found: list[tuple[str | None, dict[str, Any]]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        if ndjson.resource_type(resource) is None or not isinstance(resource, dict):
            continue
        full_url = entry.get("fullUrl")
        found.append((full_url if isinstance(full_url, str) else None, resource))
    return found


def split_bundle(bundle: Mapping[str, Any], stem: str, mode: str) -> list[Piece]:
    """The pieces of a parsed Bundle (entries without a resource are left out)."""
    entries = _bundle_entries(bundle)
    if not entries:
        raise BadInputError("the Bundle holds no resources to split", "add it whole")
    if mode == "resource":
        if len(entries) > MAX_PIECES:
            raise _too_many()
        pieces = []
        for number, (_, resource) in enumerate(entries, 1):
            tally = Tally()
            tally.add(resource)
            part = _part_name(resource, number)
            name = _file_name(stem, part, ".json")
            pieces.append(Piece(part, _prepared(name, JSON_MEDIA_TYPE, tally, _opener(resource))))
        return pieces
    # A Patient entry's fullUrl (often urn:uuid:…) stands for that Patient in references.
    aliases = {
        url: compartment(resource) or f"Patient {url}"
        for url, resource in entries
        if url is not None and resource["resourceType"] == "Patient"
    }
    groups: dict[str, list[dict[str, Any]]] = {}
    for url, resource in entries:
        own = aliases.get(url) if url and resource["resourceType"] == "Patient" else None
        key = compartment(resource, aliases) or own or REMAINDER
        entry: dict[str, Any] = {"fullUrl": url} if url else {}
        entry["resource"] = resource
        groups.setdefault(key, []).append(entry)
        if len(groups) > MAX_PIECES:
            raise _too_many()
    pieces = []
    for key in sorted(groups, key=lambda k: k == REMAINDER):  # stable: first seen, remainder last
        tally = Tally()
        for grouped in groups[key]:
            tally.add(grouped["resource"])
        bundle_piece = {"resourceType": "Bundle", "type": "collection", "entry": groups[key]}
        name = _file_name(stem, key, ".json")
        pieces.append(Piece(key, _prepared(name, JSON_MEDIA_TYPE, tally, _opener(bundle_piece))))
    return pieces


# -- NDJSON ----------------------------------------------------------------------------------


@dataclass
class _Spans:
    """Where one piece's lines are in the file, and what they hold."""

    tally: Tally = field(default_factory=Tally)
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lengths: array[int] = field(default_factory=lambda: array("q"))


class _SpanReader:
    """Reads a piece's lines back from the file, each ending in a newline for an NDJSON piece
    (a file-like reader; one line in memory at a time, handed out without re-copying it)."""

    def __init__(self, handle: BinaryIO, spans: _Spans, stamp: tuple[int, int], ndjson_out: bool):
        self._handle = handle
        self._spans = spans
        self._stamp = stamp
        self._next = 0
        self._line = b""
        self._at = 0
        self._newline = b"\n" if ndjson_out else b""

    def _load(self) -> bool:
        """Read the next line of the piece into ``_line``; False when there is none."""
        if self._next >= len(self._spans.offsets):
            return False
        if _stamp(self._handle) != self._stamp:
            raise BadInputError(
                "the NDJSON file changed while it was being split",
                "wait until it is complete, then add it again",
            )
        self._handle.seek(self._spans.offsets[self._next])
        want = self._spans.lengths[self._next]
        data = self._handle.read(want)
        if len(data) != want:
            raise BadInputError("the NDJSON file changed while it was being split")
        self._line, self._at = data + self._newline, 0
        self._next += 1
        return True

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self._at >= len(self._line) and not self._load():
                break
            end = len(self._line) if size < 0 else min(len(self._line), self._at + size)
            parts.append(self._line[self._at : end])
            if size > 0:
                size -= end - self._at
            self._at = end
        return b"".join(parts)

    def __enter__(self) -> _SpanReader:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _stamp(handle: BinaryIO) -> tuple[int, int]:
    st = os.fstat(handle.fileno())
    return st.st_size, st.st_mtime_ns


def split_ndjson(handle: BinaryIO, stem: str, mode: str) -> list[Piece]:
    """The pieces of an NDJSON file open in ``handle`` (which must stay open while they are
    read). Every line is checked first, so a bad line stops the split before anything is added."""
    groups: dict[str, _Spans] = {}
    for line in ndjson.read_lines(handle):
        if mode == "resource":
            key = _part_name(line.resource, line.number)
            key = key if key not in groups else f"{line.resource['resourceType']} #{line.number}"
        else:
            key = compartment(line.resource) or REMAINDER
        spans = groups.get(key)
        if spans is None:
            if len(groups) >= MAX_PIECES:
                raise _too_many()
            spans = groups[key] = _Spans()
        spans.tally.add(line.resource)
        if len(spans.tally.counts) > ndjson.MAX_RESOURCE_TYPES:
            raise BadInputError(
                f"the NDJSON file names more than {ndjson.MAX_RESOURCE_TYPES} resource types"
            )
        spans.offsets.append(line.offset)
        spans.lengths.append(line.length)
    if not groups:
        raise BadInputError("the NDJSON file holds no resources", "add it whole")
    stamp = _stamp(handle)
    per_resource = mode == "resource"
    media_type, suffix = (
        (JSON_MEDIA_TYPE, ".json") if per_resource else (ndjson.MEDIA_TYPE, ".ndjson")
    )
    pieces = []
    for key in sorted(groups, key=lambda k: k == REMAINDER):
        spans = groups[key]

        def opener(spans: _Spans = spans) -> BinaryIO:
            return cast(BinaryIO, _SpanReader(handle, spans, stamp, not per_resource))

        pieces.append(
            Piece(key, _prepared(_file_name(stem, key, suffix), media_type, spans.tally, opener))
        )
    return pieces


@contextlib.contextmanager
def open_split(path: Path, mode: str) -> Iterator[list[Piece]]:
    """The pieces ``path`` splits into (a Bundle, or NDJSON), checked before any is added;
    UsageError for anything else. The file stays open while the pieces are read."""
    if mode not in MODES:
        raise UsageError(f"unknown split {mode!r}", "use --split resource or --split patient")
    stem = Path(path.name).stem or "split"
    with path.open("rb") as handle:
        if path.suffix.lower() == ndjson.SUFFIX or ndjson.looks_like_ndjson(path):
            yield split_ndjson(handle, stem, mode)
            return
        if os.fstat(handle.fileno()).st_size > BUNDLE_LIMIT:
            raise UsageError(
                "the Bundle is too large to split (at most 512 MiB)",
                "export it as NDJSON (FHIR Bulk Data), which splits at any size",
            )
        try:
            value = jsonutil.loads(handle.read(), max_bytes=BUNDLE_LIMIT, what="the file")
        except ValueError:
            value = None
        kind = ndjson.resource_type(value)
        if kind != "Bundle" or not isinstance(value, dict):
            raise UsageError(
                "--split needs a FHIR Bundle or a FHIR NDJSON file"
                + (f"; this is one {kind} resource" if kind else ""),
                "add it without --split",
            )
        yield split_bundle(value, stem, mode)
