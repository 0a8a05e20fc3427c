"""The Safe Harbor survey: one unique marker in every identifier kind and location.

`survey_bundle()` plants a marker for each of the 18 kinds of 164.514(b)(2)(i), in every
location docs/deidentification.md names for it (the table "The 18 identifiers") and in the
hard places a review found (element ids, extensions, primitive extensions, display strings,
fhir_comments, unknown members, Coding.version, Quantity.unit and system, a free string in a
code, a ZIP in `state` or address `text`, a foreign postal code, a contained Patient, a second
Patient, a RelatedPerson). It returns the Bundle, the markers (strings no output may contain,
each tagged with its kind and location) and the ages over 89 planted in numeric form.
"""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


class _Plant:
    def __init__(self) -> None:
        self.markers: dict[str, str] = {}  # marker -> "kind: location"

    def __call__(self, kind: str, where: str, value: str | None = None) -> str:
        marker = value or f"Mk{kind}{len(self.markers):03d}{where[:3].title()}zq"
        self.markers.setdefault(marker, f"{kind}: {where}")  # a value planted twice: first place
        return marker


def survey_bundle() -> tuple[dict[str, Any], dict[str, str], list[float]]:
    """The survey Bundle, its markers and the planted ages over 89 (see the module doc)."""
    m = _Plant()
    ages = [97.0, 1164.0, 95.0, 93.0, 96.0, 94.0, 91.0]

    def human(where: str) -> dict[str, Any]:
        return {
            "use": "official",
            "text": m("A", f"{where}.name.text"),
            "family": m("A", f"{where}.name.family"),
            "given": [m("A", f"{where}.name.given")],
            "prefix": [m("A", f"{where}.name.prefix")],
            "_family": {"extension": [{"url": "http://x.example/e", "valueString": m("A", f"{where}._family")}]},
        }  # fmt: skip

    def telecom(where: str) -> list[dict[str, Any]]:
        return [
            {"system": "phone", "value": m("D", f"{where}.telecom phone", f"617-55{len(m.markers):02d}-0142")},
            {"system": "fax", "value": m("E", f"{where}.telecom fax", f"617-56{len(m.markers):02d}-0199")},
            {"system": "email", "value": m("F", f"{where}.telecom email", f"mk{len(m.markers)}@mailhost.example")},
            {"system": "url", "value": m("N", f"{where}.telecom url", f"https://mk{len(m.markers)}.example/me")},
        ]  # fmt: skip

    def address(where: str, zip5: str) -> dict[str, Any]:
        return {
            "line": [m("B", f"{where}.address.line")],
            "city": m("B", f"{where}.address.city"),
            "district": m("B", f"{where}.address.district"),
            "state": "MA",
            "postalCode": m("B", f"{where}.address.postalCode", zip5),
            "country": "US",
            "text": m("B", f"{where}.address.text"),
            "period": {"start": m("C", f"{where}.address.period", "2011-04-17")},
        }

    def ids(where: str) -> list[dict[str, Any]]:
        return [
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": m("G", f"{where}.identifier ssn", f"9{len(m.markers):02d}-41-7765")},
            {"type": {"coding": [{"code": "MR"}]}, "value": m("H", f"{where}.identifier mrn")},
            {"type": {"text": m("R", f"{where}.identifier.type.text")}, "value": m("I", f"{where}.identifier plan")},
            {"value": m("J", f"{where}.identifier account")},
            {"value": m("K", f"{where}.identifier licence")},
            {"value": m("L", f"{where}.identifier vehicle")},
        ]  # fmt: skip

    def patient(where: str, rid: str) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": m("R", f"{where}.id", rid),
            "meta": {"lastUpdated": "2024-01-02T03:04:05Z", "source": m("O", f"{where}.meta.source", "http://10.77.31.9/ehr"),
                     "tag": [{"system": "https://tags.example", "code": m("R", f"{where}.meta.tag")}]},
            "implicitRules": m("N", f"{where}.implicitRules", f"https://rules{len(m.markers)}.example/r"),
            "text": {"status": "generated", "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\">{m('A', f'{where}.text.div')}</div>"},
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": m("A", f"{where} mothersMaidenName")},
                          {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                           "extension": [{"url": "text", "valueString": m("R", f"{where} race text")}]}],
            "identifier": ids(where),
            "name": [human(where)],
            "telecom": telecom(where),
            "gender": "female",
            "birthDate": m("C", f"{where}.birthDate", "1931-07-23"),
            "address": [address(where, "02139")],
            "photo": [{"contentType": "image/jpeg", "data": m("Q", f"{where}.photo", "TWtRcGhvdG8xMjM0NTY3OA==")}],
            "contact": [{"name": human(f"{where}.contact"), "telecom": telecom(f"{where}.contact")}],
            "link": [{"other": {"reference": f"Patient/{m('R', f'{where}.link')}"}, "type": "seealso"}],
            "generalPractitioner": [{"reference": "Practitioner/dr", "display": m("A", f"{where}.gp.display")}],
            "fhir_comments": [m("R", f"{where}.fhir_comments")],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M",
                                          "version": m("R", f"{where} Coding.version"), "patientNote": m("R", f"{where} unknown member")}]},
        }  # fmt: skip

    first = patient("Patient", "survey-p1")
    second = patient("Patient#2", "survey-p2")
    second["address"] = [{"postalCode": m("B", "foreign postalCode", "75008"), "city": "Paris", "country": "FR",
                          "state": m("B", "state hiding a ZIP", "Ile-de-France 75009")}]  # fmt: skip
    contained = patient("contained Patient", "survey-cp")
    related = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": "Patient/survey-p1"},
        "name": [human("RelatedPerson")],
        "telecom": telecom("RelatedPerson"),
        "birthDate": m("C", "RelatedPerson.birthDate", "1958-02-11"),
        "address": [address("RelatedPerson", "02140")],
    }
    practitioner = {
        "resourceType": "Practitioner",
        "name": [human("Practitioner")],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": m("K", "Practitioner NPI", "1730496558")}],
        "qualification": [{"identifier": [{"value": m("K", "qualification.identifier")}],
                           "code": {"text": m("R", "qualification.code.text")}}],
        "telecom": telecom("Practitioner"),
    }  # fmt: skip
    organization = {
        "resourceType": "Organization",
        "name": m("A", "Organization.name"),
        "alias": [m("A", "Organization.alias")],
        "address": [address("Organization", "02141")],
    }
    location = {
        "resourceType": "Location",
        "status": "active",
        "name": m("B", "Location.name"),
        "description": m("B", "Location.description"),
        "position": {"longitude": -71.0912, "latitude": 42.3621},
        "address": address("Location", "02142"),
    }
    observation = {
        "resourceType": "Observation",
        "id": "obs1",
        "status": "final",
        "code": {
            "coding": [
                {"system": LOINC, "code": "2345-7", "display": m("R", "Coding.display"), "id": m("R", "element id")},
                {"system": "https://hospital.example/codes", "code": m("J", "local code (account number)")},
                {"system": LOINC, "code": m("R", "free string in a code", "Jane Mkzq 555")},
            ],
            "text": m("R", "CodeableConcept.text"),
        },
        "subject": {"reference": "#survey-cp", "display": m("A", "Reference.display")},
        "effectiveDateTime": m("C", "effectiveDateTime", "2023-05-19T08:30:00Z"),
        "issued": m("C", "issued", "2023-05-19T12:00:00Z"),
        "valueQuantity": {"value": 98, "unit": m("R", "Quantity.unit free text", "mg/dL (pt Mkzq Doe)"),
                          "system": m("N", "Quantity.system URL", "https://units.mkzq.example/u"), "code": "mg/dL"},
        "note": [{"text": m("R", "note"), "authorString": m("A", "note.author")}],
        "interpretation": [{"coding": [{"system": m("N", "Coding.system URL", "https://mkzq-interp.example/i"), "code": "H"}]}],
        "contained": [contained],
        "modifierExtension": [{"url": "http://x.example/m", "valueString": m("R", "modifierExtension")}],
        "_status": {"extension": [{"url": "http://x.example/s", "valueString": m("R", "primitive extension")}]},
    }  # fmt: skip
    ages_obs = [
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": "30525-0"}]},
         "valueInteger": 97},
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": "21612-7"}]},
         "valueQuantity": {"value": 1164, "unit": "mo"}},
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": LOINC, "code": "8302-2"}]},
         "valueQuantity": {"value": 95, "unit": "years old"}},
    ]  # fmt: skip
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/survey-p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetAge": {"value": 93, "unit": "yo"},
        "recordedDate": m("C", "Condition.recordedDate", "2022-11-03"),
    }
    history = {
        "resourceType": "FamilyMemberHistory",
        "status": "completed",
        "patient": {"reference": "Patient/survey-p1"},
        "name": m("A", "FamilyMemberHistory.name"),
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]},
        "bornDate": m("C", "FamilyMemberHistory.bornDate", "1929-03-30"),
        "ageAge": {"value": 96, "unit": "a", "system": UCUM, "code": "a"},
    }  # fmt: skip
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": m("N", "QuestionnaireResponse.questionnaire", "https://forms.mkzq.example/intake"),
        "item": [{"linkId": "age", "text": m("R", "item.text"), "answer": [{"valueInteger": 94}]},
                 {"linkId": "name", "answer": [{"valueString": m("A", "answer.valueString")}]}],
    }  # fmt: skip
    coverage = {
        "resourceType": "Coverage",
        "status": "active",
        "subscriberId": m("I", "Coverage.subscriberId"),
        "dependent": m("I", "Coverage.dependent"),
        "beneficiary": {"reference": "Patient/survey-p1"},
        "payor": [{"reference": "Organization/payer"}],
        "class": [
            {"type": {"coding": [{"code": "group"}]}, "value": m("I", "Coverage.class.value")}
        ],
    }
    claim = {
        "resourceType": "Claim",
        "status": "active",
        "use": "claim",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": {"reference": "Patient/survey-p1"},
        "created": m("C", "Claim.created", "2023-06-02"),
        "provider": {"reference": "Organization/o"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c"},
                       "preAuthRef": [m("R", "preAuthRef")]}],
        "accident": {"date": m("C", "accident.date", "2023-05-30"), "locationAddress": address("accident", "02143")},
    }  # fmt: skip
    account = {
        "resourceType": "Account",
        "status": "active",
        "identifier": ids("Account"),
        "name": m("J", "Account.name"),
    }
    device = {
        "resourceType": "Device",
        "status": "active",
        "udiCarrier": [{"deviceIdentifier": m("M", "udiCarrier.deviceIdentifier"), "carrierHRF": m("M", "udiCarrier.carrierHRF")}],
        "distinctIdentifier": m("M", "distinctIdentifier"),
        "serialNumber": m("M", "serialNumber"),
        "lotNumber": m("M", "lotNumber"),
        "modelNumber": m("M", "modelNumber"),
        "deviceName": [{"name": m("M", "deviceName"), "type": "user-friendly-name"}],
        "url": m("N", "Device.url", "https://device.mkzq.example/d"),
    }  # fmt: skip
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "masterIdentifier": {"value": m("R", "masterIdentifier")},
        "date": m("C", "DocumentReference.date", "2023-05-20T10:00:00Z"),
        "description": m("R", "DocumentReference.description"),
        "content": [{"attachment": {"contentType": "application/pdf", "url": m("N", "attachment.url", "https://docs.mkzq.example/a.pdf"),
                                    "title": m("R", "attachment.title"), "data": m("P", "attachment.data", "TWtQYmlvbWV0cmljMTIz")}}],
    }  # fmt: skip
    media = {
        "resourceType": "Media",
        "status": "completed",
        "content": {
            "contentType": "image/png",
            "data": m("P", "Media.content (biometric)", "TWtGaW5nZXJwcmludDk5"),
        },
    }
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "24627-2"}]},
        "conclusion": m("R", "DiagnosticReport.conclusion"),
        "presentedForm": [{"data": m("R", "presentedForm", "TWtQcmVzZW50ZWQ1NTU=")}],
    }
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/survey-p1"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]},
        "dosageInstruction": [{"text": m("R", "Dosage.text"), "patientInstruction": m("R", "patientInstruction"),
                               "timing": {"event": [m("C", "timing.event", "2023-05-21T08:00:00Z")]}}],
        "note": [{"text": m("R", "MedicationRequest.note")}],
    }  # fmt: skip
    entries = [first, second, related, practitioner, organization, location, observation, *ages_obs,
               condition, history, response, coverage, claim, account, device, document, media,
               report, request]  # fmt: skip
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"value": m("R", "Bundle.identifier")},
        "entry": [
            {"fullUrl": f"https://ehr.mkzq-hospital.example/fhir/{r['resourceType']}/{r.get('id', i)}", "resource": r}
            for i, r in enumerate(entries)
        ],
    }  # fmt: skip
    return bundle, m.markers, ages
