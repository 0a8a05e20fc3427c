"""A realistic synthetic clinical corpus, and the clinically meaningful facts in a record.

`make_record(rng)` builds one patient's FHIR R4 Bundle the way EHR exports look: US Core
race, ethnicity and birth sex, encounters, conditions, labs and vitals, an age observation,
medications (request, dispense, statement, administration), immunisations, procedures,
imaging, a PHQ-9 questionnaire, allergies, family history, claims and an explanation of
benefit. Codes come in the forms real systems use: canonical URLs, OIDs, `https://loinc.org`,
ICD-10-PCS, HCPCS, ICD-11, Orphanet, DICOM, CDC race and ethnicity. Identifiers and free text
appear as in real data (the Safe Harbor survey in synth.py plants the hard cases).

`clinical_facts(resource)` lists what a researcher uses: every Coding (system, code), every
Quantity or Money (value, unit), each date as its year, and the clinical primitives (statuses,
intents, linkIds, answers, counts, dose timing). benchmarks/bench_deid_utility.py and
tests/deid/test_deid_utility.py count the share of facts that survive de-identification.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta
from typing import Any

NOW_YEAR = 2025
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
THL7 = "http://terminology.hl7.org/CodeSystem/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
CDC_RACE = "urn:oid:2.16.840.1.113883.6.238"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"

LOINC_FORMS = [LOINC, LOINC, LOINC, "urn:oid:2.16.840.1.113883.6.1", "https://loinc.org"]
SNOMED_FORMS = [SNOMED, SNOMED, SNOMED, "urn:oid:2.16.840.1.113883.6.96"]
RACES = [("2106-3", "White"), ("2054-5", "Black or African American"), ("2028-9", "Asian"),
         ("1002-5", "American Indian or Alaska Native"), ("2131-1", "Other Race")]  # fmt: skip
ETHNICITIES = [("2186-5", "Not Hispanic or Latino"), ("2135-2", "Hispanic or Latino")]
STATES = [("MA", "02139"), ("NH", "03766"), ("NY", "10027"), ("CA", "94110"), ("TX", "77030")]
CONDITIONS = [
    ("http://snomed.info/sct", "44054006"),  # diabetes type 2
    ("http://snomed.info/sct", "38341003"),  # hypertension
    ("http://hl7.org/fhir/sid/icd-10-cm", "J45.909"),  # asthma
    ("http://hl7.org/fhir/sid/icd-10-cm", "E78.5"),  # hyperlipidaemia
    ("http://id.who.int/icd/release/11/mms", "5A11"),  # ICD-11 diabetes type 2
    ("http://www.orpha.net", "ORPHA:586"),  # cystic fibrosis
    ("urn:oid:2.16.840.1.113883.6.90", "I10"),  # ICD-10-CM as an OID
]
LABS = [("2345-7", 70, 140, "mg/dL"), ("718-7", 11, 17, "g/dL"), ("2160-0", 0.6, 1.3, "mg/dL"),
        ("4548-4", 4.5, 9.0, "%"), ("2093-3", 120, 260, "mg/dL"), ("6690-2", 4, 11, "10*3/uL"),
        ("2951-2", 133, 146, "mmol/L"), ("2823-3", 3.4, 5.2, "mmol/L")]  # fmt: skip
VITALS = [("8867-4", 55, 100, "/min"), ("29463-7", 50, 110, "kg"), ("8302-2", 150, 195, "cm"),
          ("39156-5", 18, 35, "kg/m2"), ("8310-5", 36.1, 37.8, "Cel"),
          ("9279-1", 12, 20, "/min")]  # fmt: skip
MEDS = [("860975", 500, "mg"), ("197361", 10, "mg"), ("314076", 20, "mg"), ("745679", 90, "ug")]
VACCINES = [("http://hl7.org/fhir/sid/cvx", "140"), ("http://hl7.org/fhir/sid/cvx", "208"),
            ("urn:oid:2.16.840.1.113883.12.292", "115")]  # fmt: skip
PROCEDURES = [
    (SNOMED, "73761001"),  # colonoscopy
    ("http://www.ama-assn.org/go/cpt", "99213"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "0DTJ4ZZ"),  # ICD-10-PCS appendectomy
    ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "G0121"),  # HCPCS
]
MODALITIES = ["CT", "MR", "CR", "US", "DX"]


def _day(rng: random.Random, start_year: int) -> date:
    start = date(start_year, 1, 1)
    return start + timedelta(days=rng.randrange(max(1, (date(NOW_YEAR, 5, 1) - start).days)))


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": display or code}


def _qty(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _money(value: float) -> dict[str, Any]:
    return {"value": round(value, 2), "currency": "USD"}


class _Builder:
    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.index = index
        self.entries: list[dict[str, Any]] = []
        self.counter = 0

    def add(self, resource: dict[str, Any]) -> str:
        self.counter += 1
        rid = f"r{self.index}-{self.counter}"
        resource["id"] = rid
        resource.setdefault("meta", {"lastUpdated": "2025-01-02T03:04:05Z"})
        self.entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": resource})
        return f"{resource['resourceType']}/{rid}"


def make_record(rng: random.Random, index: int = 0) -> dict[str, Any]:
    """One patient's Bundle (see the module docstring)."""
    b = _Builder(rng, index)
    age = rng.randrange(18, 88)
    birth = date(NOW_YEAR - age, 1, 1) + timedelta(days=rng.randrange(360))
    gender = rng.choice(["female", "male"])
    state, zip5 = rng.choice(STATES)
    race = rng.choice(RACES)
    ethnicity = rng.choice(ETHNICITIES)
    patient = b.add(
        {
            "resourceType": "Patient",
            "extension": [
                {
                    "url": US_CORE + "us-core-race",
                    "extension": [
                        {"url": "ombCategory", "valueCoding": _coding(CDC_RACE, *race)},
                        {"url": "text", "valueString": race[1]},
                    ],
                },
                {
                    "url": US_CORE + "us-core-ethnicity",
                    "extension": [
                        {"url": "ombCategory", "valueCoding": _coding(CDC_RACE, *ethnicity)},
                        {"url": "text", "valueString": ethnicity[1]},
                    ],
                },
                {"url": US_CORE + "us-core-birthsex", "valueCode": gender[0].upper()},
            ],
            "identifier": [{"system": "urn:oid:1.2.3.4", "value": f"MRN{index:08d}"}],
            "name": [{"family": f"Family{index}", "given": [f"Given{index}"]}],
            "gender": gender,
            "birthDate": birth.isoformat(),
            "address": [
                {
                    "line": [f"{index} Main St"],
                    "city": "Town",
                    "state": state,
                    "postalCode": zip5,
                    "country": "US",
                }
            ],
            "maritalStatus": _cc(THL7 + "v3-MaritalStatus", rng.choice("MSDW")),
            "communication": [{"language": _cc("urn:ietf:bcp:47", "en-US"), "preferred": True}],
        }
    )
    subject = {"reference": patient}
    encounters = []
    for _ in range(rng.randrange(2, 5)):
        start = _day(rng, NOW_YEAR - 6)
        klass = rng.choice(["AMB", "EMER", "IMP"])
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": _coding(THL7 + "v3-ActCode", klass),
            "type": [_cc(SNOMED, "185349003", "Encounter for check up")],
            "subject": subject,
            "period": {"start": f"{start}T09:00:00-05:00", "end": f"{start}T10:00:00-05:00"},
            "reasonCode": [_cc(*rng.choice(CONDITIONS))],
        }
        if klass == "IMP":
            encounter["hospitalization"] = {
                "dischargeDisposition": _cc(THL7 + "discharge-disposition", "home")
            }
        encounters.append((b.add(encounter), start))
    for system, code in rng.sample(CONDITIONS, rng.randrange(2, 4)):
        ref, day = rng.choice(encounters)
        b.add(
            {
                "resourceType": "Condition",
                "clinicalStatus": _cc(THL7 + "condition-clinical", "active"),
                "verificationStatus": _cc(THL7 + "condition-ver-status", "confirmed"),
                "category": [_cc(THL7 + "condition-category", "problem-list-item")],
                "code": _cc(system, code),
                "subject": subject,
                "encounter": {"reference": ref},
                "onsetDateTime": day.isoformat(),
                "recordedDate": day.isoformat(),
            }
        )
    for code, low, high, unit in rng.sample(LABS, 5):
        ref, day = rng.choice(encounters)
        value = round(rng.uniform(low * 0.8, high * 1.2), 1)
        b.add(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_cc(THL7 + "observation-category", "laboratory")],
                "code": _cc(rng.choice(LOINC_FORMS), code),
                "subject": subject,
                "encounter": {"reference": ref},
                "effectiveDateTime": f"{day}T08:30:00-05:00",
                "issued": f"{day}T12:00:00-05:00",
                "valueQuantity": _qty(value, unit),
                "interpretation": [
                    _cc(THL7 + "v3-ObservationInterpretation", "H" if value > high else "N")
                ],
                "referenceRange": [{"low": _qty(low, unit), "high": _qty(high, unit)}],
            }
        )
    for code, low, high, unit in rng.sample(VITALS, 4):
        ref, day = rng.choice(encounters)
        b.add(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_cc(THL7 + "observation-category", "vital-signs")],
                "code": _cc(LOINC, code),
                "subject": subject,
                "effectiveDateTime": f"{day}T09:10:00-05:00",
                "valueQuantity": _qty(round(rng.uniform(low, high), 1), unit),
            }
        )
    ref, day = rng.choice(encounters)
    b.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [_cc(THL7 + "observation-category", "vital-signs")],
            "code": _cc(LOINC, "85354-9", "Blood pressure panel"),
            "subject": subject,
            "effectiveDateTime": f"{day}T09:12:00-05:00",
            "component": [
                {
                    "code": _cc(LOINC, "8480-6"),
                    "valueQuantity": _qty(rng.randrange(100, 160), "mm[Hg]"),
                },
                {
                    "code": _cc(LOINC, "8462-4"),
                    "valueQuantity": _qty(rng.randrange(60, 100), "mm[Hg]"),
                },
            ],
        }
    )
    b.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": _cc(LOINC, "30525-0", "Age"),
            "subject": subject,
            "effectiveDateTime": f"{day}T09:00:00-05:00",
            "valueQuantity": _qty(age - (NOW_YEAR - day.year), "a"),
        }
    )
    b.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [_cc(THL7 + "observation-category", "social-history")],
            "code": _cc(LOINC, "72166-2", "Tobacco smoking status"),
            "subject": subject,
            "effectiveDateTime": f"{day}T09:00:00-05:00",
            "valueCodeableConcept": _cc(SNOMED, rng.choice(["266919005", "8517006", "77176002"])),
        }
    )
    for rxnorm, dose, unit in rng.sample(MEDS, 2):
        ref, day = rng.choice(encounters)
        medication = _cc(RXNORM, rxnorm)
        dosage = {
            "sequence": 1,
            "text": f"Take {dose} {unit} by mouth daily",
            "timing": {
                "repeat": {
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "d",
                    "boundsPeriod": {"start": day.isoformat()},
                }
            },
            "route": _cc(SNOMED, "26643006", "Oral route"),
            "doseAndRate": [
                {"type": _cc(THL7 + "dose-rate-type", "ordered"), "doseQuantity": _qty(dose, unit)}
            ],
        }
        request = b.add(
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": medication,
                "subject": subject,
                "encounter": {"reference": ref},
                "authoredOn": day.isoformat(),
                "dosageInstruction": [dosage],
                "dispenseRequest": {
                    "validityPeriod": {"start": day.isoformat()},
                    "numberOfRepeatsAllowed": 3,
                    "quantity": _qty(30, "{tablet}"),
                    "expectedSupplyDuration": _qty(30, "d"),
                },
            }
        )
        b.add(
            {
                "resourceType": "MedicationDispense",
                "status": "completed",
                "medicationCodeableConcept": medication,
                "subject": subject,
                "authorizingPrescription": [{"reference": request}],
                "quantity": _qty(30, "{tablet}"),
                "daysSupply": _qty(30, "d"),
                "whenHandedOver": f"{day}T15:00:00-05:00",
                "dosageInstruction": [dosage],
            }
        )
        b.add(
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "medicationCodeableConcept": medication,
                "subject": subject,
                "effectivePeriod": {"start": day.isoformat()},
                "dosage": [dosage],
            }
        )
    ref, day = rng.choice(encounters)
    b.add(
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": _cc(RXNORM, "1807510", "ceftriaxone 1 g injection"),
            "subject": subject,
            "context": {"reference": ref},
            "effectiveDateTime": f"{day}T11:00:00-05:00",
            "dosage": {
                "route": _cc(SNOMED, "47625008", "Intravenous route"),
                "dose": _qty(1, "g"),
                "rateQuantity": _qty(100, "mL/h"),
            },
        }
    )
    for system, code in rng.sample(VACCINES, 2):
        day = _day(rng, NOW_YEAR - 5)
        b.add(
            {
                "resourceType": "Immunization",
                "status": "completed",
                "vaccineCode": _cc(system, code),
                "patient": subject,
                "occurrenceDateTime": day.isoformat(),
                "primarySource": True,
                "lotNumber": f"LOT{rng.randrange(10**5)}",
                "site": _cc(THL7 + "v3-ActSite", "LA"),
                "route": _cc(THL7 + "v3-RouteOfAdministration", "IM"),
                "doseQuantity": _qty(0.5, "mL"),
                "protocolApplied": [{"doseNumberPositiveInt": 1, "seriesDosesPositiveInt": 2}],
            }
        )
    for system, code in rng.sample(PROCEDURES, 2):
        ref, day = rng.choice(encounters)
        b.add(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": _cc(system, code),
                "subject": subject,
                "encounter": {"reference": ref},
                "performedPeriod": {
                    "start": f"{day}T13:00:00-05:00",
                    "end": f"{day}T14:00:00-05:00",
                },
                "bodySite": [_cc(SNOMED, "71854001", "Colon structure")],
                "outcome": _cc(SNOMED, "385669000", "Successful"),
            }
        )
    ref, day = rng.choice(encounters)
    modality = rng.choice(MODALITIES)
    b.add(
        {
            "resourceType": "ImagingStudy",
            "status": "available",
            "identifier": [
                {"system": "urn:dicom:uid", "value": f"urn:oid:2.25.{rng.getrandbits(64)}"}
            ],
            "modality": [_coding(DICOM, modality)],
            "subject": subject,
            "encounter": {"reference": ref},
            "started": f"{day}T10:00:00-05:00",
            "numberOfSeries": 1,
            "numberOfInstances": 2,
            "procedureCode": [_cc(LOINC, "24627-2", "Chest CT")],
            "series": [
                {
                    "uid": f"2.25.{rng.getrandbits(64)}",
                    "number": 1,
                    "modality": _coding(DICOM, modality),
                    "numberOfInstances": 2,
                    "bodySite": _coding(SNOMED, "51185008", "Thorax"),
                    "laterality": _coding(SNOMED, "51440002", "Both sides"),
                    "started": f"{day}T10:01:00-05:00",
                    "instance": [
                        {
                            "uid": f"2.25.{rng.getrandbits(64)}",
                            "number": n,
                            "sopClass": _coding(
                                "urn:ietf:rfc:3986", "urn:oid:1.2.840.10008.5.1.4.1.1.2"
                            ),
                        }
                        for n in (1, 2)
                    ],
                }
            ],
        }
    )
    day = _day(rng, NOW_YEAR - 3)
    answers = [rng.randrange(4) for _ in range(9)]
    b.add(
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "http://loinc.org/q/44249-1",
            "status": "completed",
            "subject": subject,
            "authored": f"{day}T09:30:00-05:00",
            "item": [
                {
                    "linkId": "age",
                    "text": "Your age",
                    "answer": [{"valueInteger": age - (NOW_YEAR - day.year)}],
                },
                *(
                    {
                        "linkId": f"/4428{n}-{n}",
                        "text": f"Question {n}",
                        "answer": [{"valueCoding": _coding(LOINC, f"LA65{68 + a}-{a}")}],
                    }
                    for n, a in enumerate(answers)
                ),
                {
                    "linkId": "/44261-6",
                    "text": "Total score",
                    "answer": [{"valueInteger": sum(answers)}],
                },
            ],
        }
    )
    b.add(
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": _cc(THL7 + "allergyintolerance-clinical", "active"),
            "verificationStatus": _cc(THL7 + "allergyintolerance-verification", "confirmed"),
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": _cc(RXNORM, "7980", "Penicillin G"),
            "patient": subject,
            "onsetDateTime": _day(rng, NOW_YEAR - 20).isoformat(),
            "reaction": [
                {"manifestation": [_cc(SNOMED, "247472004", "Hives")], "severity": "moderate"}
            ],
        }
    )
    b.add(
        {
            "resourceType": "FamilyMemberHistory",
            "status": "completed",
            "patient": subject,
            "relationship": _cc(THL7 + "v3-RoleCode", rng.choice(["MTH", "FTH", "SIS"])),
            "sex": _cc("http://hl7.org/fhir/administrative-gender", rng.choice(["female", "male"])),
            "condition": [
                {
                    "code": _cc(SNOMED, "22298006", "Myocardial infarction"),
                    "onsetAge": _qty(rng.randrange(40, 80), "a"),
                }
            ],
        }
    )
    ref, day = rng.choice(encounters)
    price = rng.choice([95.0, 150.0, 220.0, 480.0])
    dx = rng.choice(CONDITIONS)
    b.add(
        {
            "resourceType": "Claim",
            "status": "active",
            "type": _cc(THL7 + "claim-type", "professional"),
            "use": "claim",
            "patient": subject,
            "billablePeriod": {"start": day.isoformat(), "end": day.isoformat()},
            "created": day.isoformat(),
            "provider": {"reference": "Organization/hospital"},
            "priority": _cc(THL7 + "processpriority", "normal"),
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
            "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": _cc(*dx)}],
            "procedure": [{"sequence": 1, "procedureCodeableConcept": _cc(*PROCEDURES[1])}],
            "item": [
                {
                    "sequence": 1,
                    "diagnosisSequence": [1],
                    "productOrService": _cc(*PROCEDURES[1]),
                    "servicedDate": day.isoformat(),
                    "quantity": {"value": 1},
                    "unitPrice": _money(price),
                    "net": _money(price),
                    "encounter": [{"reference": ref}],
                }
            ],
            "total": _money(price),
        }
    )
    b.add(
        {
            "resourceType": "ExplanationOfBenefit",
            "status": "active",
            "type": _cc(THL7 + "claim-type", "professional"),
            "use": "claim",
            "patient": subject,
            "created": day.isoformat(),
            "insurer": {"reference": "Organization/payer"},
            "provider": {"reference": "Organization/hospital"},
            "outcome": "complete",
            "insurance": [{"focal": True, "coverage": {"reference": "Coverage/c1"}}],
            "item": [
                {
                    "sequence": 1,
                    "productOrService": _cc(*PROCEDURES[1]),
                    "adjudication": [
                        {
                            "category": _cc(THL7 + "adjudication", "submitted"),
                            "amount": _money(price),
                        },
                        {
                            "category": _cc(THL7 + "adjudication", "benefit"),
                            "amount": _money(price * 0.8),
                        },
                    ],
                }
            ],
            "total": [
                {"category": _cc(THL7 + "adjudication", "submitted"), "amount": _money(price)}
            ],
            "payment": {"amount": _money(price * 0.8)},
        }
    )
    return {"resourceType": "Bundle", "type": "collection", "entry": b.entries}


def make_corpus(seed: int, patients: int) -> list[dict[str, Any]]:
    """`patients` Bundles from one seed."""
    rng = random.Random(seed)
    return [make_record(rng, index) for index in range(patients)]


# -- clinically meaningful facts ---------------------------------------------------------------

# Primitives a researcher uses, by element name (codes, counts, answers, dose timing).
CLINICAL_PRIMITIVES = frozenset(
    """
    status intent use outcome type category criticality severity gender linkId questionnaire
    valueInteger valueBoolean valueDecimal valueCode primarySource sequence focal number
    numberOfSeries numberOfInstances numberOfRepeatsAllowed frequency period periodUnit
    doseNumberPositiveInt seriesDosesPositiveInt diagnosisSequence preferred
    """.split()
)
DATE_NAMES = frozenset(
    """
    birthDate effectiveDateTime onsetDateTime recordedDate authoredOn occurrenceDateTime
    whenHandedOver authored created servicedDate started start end
    """.split()
)
OTHER_FORMS = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "https://loinc.org": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.12.292": "http://hl7.org/fhir/sid/cvx",
}


def clinical_facts(resource: Any) -> Counter[tuple[Any, ...]]:
    """The clinically meaningful facts in a resource or Bundle, as a multiset.

    A fact is (resource type, element name, value): a Coding as (system, code) with the
    system in its canonical form (an OID or https://loinc.org counts as kept when it leaves
    in either form), a Quantity or Money as its value (and unit or currency), a date as its
    year, and the primitives in CLINICAL_PRIMITIVES as they are. Ids, references, names,
    identifiers and free text are not facts: Safe Harbor removes them.
    """
    facts: Counter[tuple[Any, ...]] = Counter()
    _collect(resource, "", "", facts)
    return facts


def _collect(node: Any, rtype: str, name: str, facts: Counter[tuple[Any, ...]]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, rtype, name, facts)
        return
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str):
            rtype = node["resourceType"]
        if (
            isinstance(node.get("code"), str)
            and isinstance(node.get("system"), str)
            and ("value" not in node)
        ):
            system = OTHER_FORMS.get(node["system"], node["system"])
            facts[(rtype, "coding", system, node["code"])] += 1
            return
        if isinstance(node.get("value"), int | float) and not isinstance(node["value"], bool):
            facts[(rtype, name, node["value"], node.get("code") or node.get("currency"))] += 1
            return
        for key, value in node.items():
            if key in ("resourceType", "id", "reference", "fullUrl", "text", "display", "url"):
                continue
            _collect(value, rtype, key, facts)
        return
    if name in DATE_NAMES and isinstance(node, str) and node[:4].isdigit():
        facts[(rtype, name, "year")] += 1  # a date counts when any date leaves in its place
    elif name in CLINICAL_PRIMITIVES and isinstance(node, str | int | float | bool):
        facts[(rtype, name, node)] += 1
