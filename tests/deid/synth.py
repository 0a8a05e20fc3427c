"""Synthetic FHIR R4 patients for the de-identification tests and benchmark.

`make_patient` builds one realistic Bundle (Patient, Practitioner, Organization, Location,
Encounter, Observations, Condition, DocumentReference, Device, Coverage, MedicationRequest,
Immunization) packed with identifiers of every Safe Harbor kind, some in ordinary places and
some hidden in uncommon ones (extensions, element ids, display strings, meta, contained
resources, primitive extensions, request URLs, non-terminology codings). It returns the
Bundle and `secrets`: every identifying string a de-identified copy must not contain.

Everything is drawn from a seeded `random.Random`, so a seed always gives the same patient.

Beside it: `synth_clinical.py` (a realistic clinical corpus and the facts a researcher uses,
for measuring what de-identification keeps) and `survey.py` (the Safe Harbor survey: a unique
marker in every identifier kind and location).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

NOW_YEAR = 2025

FIRST = [
    "Amelia",
    "Bartholomew",
    "Cordelia",
    "Desmond",
    "Evangeline",
    "Fitzgerald",
    "Genevieve",
    "Horatio",
    "Imogen",
    "Jebediah",
    "Katarina",
    "Leopold",
    "Marguerite",
    "Nathaniel",
    "Ophelia",
    "Percival",
    "Quintessa",
    "Reginald",
    "Seraphina",
    "Thaddeus",
]
LAST = [
    "Ashworth",
    "Blackwood",
    "Cavendish",
    "Dunmore",
    "Ellsworth",
    "Fairweather",
    "Grimsby",
    "Hollingsworth",
    "Ingleby",
    "Jorgensen",
    "Kittredge",
    "Lockhart",
    "Montgomery",
    "Northcott",
    "Oakenfold",
    "Pemberton",
    "Quarrington",
    "Rutherford",
    "Standish",
    "Thistlewood",
]
STREETS = [
    "Juniper Hollow Rd",
    "Quarry Lane",
    "Bramblewood Ct",
    "Old Mill Pike",
    "Larkspur Terrace",
    "Wexford Circle",
    "Tamarack Way",
    "Heron Cove Dr",
]
CITIES = [
    ("Cambridge", "MA", "02139", "Middlesex"),
    ("Lebanon", "NH", "03766", "Grafton"),
    ("Berlin", "NH", "03570", "Coos"),
    ("Burlington", "VT", "05401", "Chittenden"),
    ("Cheyenne", "WY", "82001", "Laramie"),
    ("Reno", "NV", "89501", "Washoe"),
    ("Austin", "TX", "78701", "Travis"),
    ("Portland", "OR", "97205", "Multnomah"),
    ("Denver", "CO", "80202", "Denver"),
    ("Madison", "WI", "53703", "Dane"),
]
# 3-digit areas of 20,000 people or fewer (Safe Harbor must turn them into 000).
RESTRICTED_CITIES = [
    ("Colebrook", "NH", "03601", "Coos"),
    ("Ely", "NV", "89301", "White Pine"),
    ("Rock Springs", "WY", "82301", "Sweetwater"),
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass
class SynthPatient:
    """One synthetic patient: the Bundle and what must not survive de-identification."""

    bundle: dict[str, Any]
    secrets: list[str] = field(default_factory=list)
    birth_date: str = ""
    age: int = 0
    zip5: str = ""
    gender: str = ""
    restricted_zip: bool = False

    @property
    def resources(self) -> list[dict[str, Any]]:
        """The Bundle's entries as separate resources."""
        return [entry["resource"] for entry in self.bundle["entry"]]


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _token(rng: random.Random, count: int = 10) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(count))


def _uuid(rng: random.Random) -> str:
    raw = f"{rng.getrandbits(128):032x}"
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"


def _stamp(day: date, rng: random.Random) -> str:
    return f"{day.isoformat()}T{rng.randrange(7, 19):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}-05:00"


def make_patient(
    rng: random.Random,
    *,
    age: int | None = None,
    restricted_zip: bool = False,
    urn_references: bool | None = None,
    gender: str | None = None,
    zip5: str | None = None,
    old_address: bool = True,
) -> SynthPatient:
    """Build one patient's Bundle; see the module docstring."""
    secrets: list[str] = []

    def secret(value: str) -> str:
        secrets.append(value)
        return value

    age = rng.randrange(0, 88) if age is None else age
    gender = gender or rng.choice(["female", "male", "other", "unknown"])
    birth = date(NOW_YEAR - age, 1, 1) + timedelta(days=rng.randrange(0, 180))
    birth_date = birth.isoformat()
    secret(birth_date)
    secret(birth.strftime("%m/%d/%Y"))
    secret(birth.strftime("%Y%m%d"))
    city, state, zip_default, county = rng.choice(RESTRICTED_CITIES if restricted_zip else CITIES)
    zip5 = zip5 or zip_default
    street = f"{rng.randrange(10, 9999)} {rng.choice(STREETS)}"
    for value in (city, county, street, zip5, zip5 + "-" + _digits(rng, 4)):
        secret(value)
    given, middle, family = rng.choice(FIRST), rng.choice(FIRST), rng.choice(LAST)
    for value in (given, middle, family):
        secret(value)
    spouse_given, spouse_family = rng.choice(FIRST), rng.choice(LAST)
    secret(spouse_given)
    secret(spouse_family)
    phone = f"{_digits(rng, 3)}-555-{_digits(rng, 4)}"
    fax = f"{_digits(rng, 3)}-555-{_digits(rng, 4)}"
    for value in (phone, fax, phone.replace("-", ""), fax.replace("-", ""), phone[4:]):
        secret(value)
    email = secret(f"{given.lower()}.{family.lower()}{_digits(rng, 3)}@mailhost.example")
    homepage = secret(f"https://blog.example.net/{given.lower()}-{_digits(rng, 4)}")
    ssn = secret(f"9{_digits(rng, 2)}-{_digits(rng, 2)}-{_digits(rng, 4)}")
    secret(ssn.replace("-", ""))
    mrn = secret(f"MRN{_digits(rng, 8)}")
    plan = secret(f"HP-{_token(rng)}")
    account = secret(f"ACCT{_digits(rng, 9)}")
    licence = secret(f"DL-{_token(rng, 8)}")
    medical_licence = secret(f"MDLIC{_digits(rng, 7)}")
    vin = secret(f"1HG{_token(rng, 14)}")
    plate = secret(f"PLT{_token(rng, 5)}")
    device_serial = secret(f"SN-{_token(rng, 12)}")
    udi = secret(f"(01)0{_digits(rng, 13)}(21){_token(rng, 6)}")
    lot = secret(f"LOT{_token(rng, 6)}")
    ip = secret(f"10.{rng.randrange(1, 254)}.{rng.randrange(1, 254)}.{rng.randrange(1, 254)}")
    npi = secret(f"1{_digits(rng, 9)}")
    doc_url = secret(f"https://ehr.stmungo-hospital.example/docs/{_token(rng)}.pdf")
    fingerprint = secret(f"FP-{_token(rng, 16)}")
    group_number = secret(f"GRP{_digits(rng, 6)}")
    visit_number = secret(f"V{_digits(rng, 9)}")
    mothers_maiden = secret(rng.choice(LAST) + "-" + _token(rng, 4))
    photo_bytes = f"JPEG face photo of {given} {family}".encode()
    photo_b64 = secret(base64.b64encode(photo_bytes).decode())
    note_b64 = secret(
        base64.b64encode(f"Discharge summary for {given} {family}, SSN {ssn}".encode()).decode()
    )
    practitioner_given, practitioner_family = rng.choice(FIRST), rng.choice(LAST) + "son"
    secret(practitioner_family)
    hospital = secret(f"St. Mungo {rng.choice(LAST)} Memorial Hospital")
    clinic_room = secret(f"Ward {_token(rng, 3)} Room {_digits(rng, 3)}")
    birth_time = secret(f"{birth_date}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z")

    urn = rng.random() < 0.5 if urn_references is None else urn_references
    ids = {
        kind: _uuid(rng) if urn else f"{kind.lower()}-{_token(rng, 8).lower()}"
        for kind in (
            "Patient",
            "Practitioner",
            "Organization",
            "Location",
            "Encounter",
            "Observation1",
            "Observation2",
            "Observation3",
            "Observation4",
            "Condition",
            "DocumentReference",
            "Device",
            "Coverage",
            "MedicationRequest",
            "Immunization",
        )
    }
    for value in ids.values():
        secret(value)

    def rtype(kind: str) -> str:
        return kind.rstrip("0123456789")

    def ref(kind: str, display: str | None = None) -> dict[str, Any]:
        target = f"urn:uuid:{ids[kind]}" if urn else f"{rtype(kind)}/{ids[kind]}"
        out: dict[str, Any] = {"reference": target}
        if display:
            out["display"] = display
        return out

    def full_url(kind: str) -> str:
        if urn:
            return f"urn:uuid:{ids[kind]}"
        return f"https://fhir.stmungo-hospital.example/r4/{rtype(kind)}/{ids[kind]}"

    secret("stmungo-hospital")
    visit_day = date(NOW_YEAR - rng.randrange(0, 3), rng.randrange(1, 13), rng.randrange(1, 28))
    visit_start = _stamp(visit_day, rng)
    visit_end = _stamp(visit_day + timedelta(days=rng.randrange(0, 5)), rng)
    for value in (visit_start, visit_end, visit_day.isoformat()):
        secret(value)
    onset_day = visit_day - timedelta(days=rng.randrange(30, 900))
    secret(onset_day.isoformat())
    address = {
        "use": "home",
        "line": [street, f"Apt {_digits(rng, 2)}"],
        "city": city,
        "district": county,
        "state": state,
        "postalCode": zip5,
        "country": "US",
        "text": f"{street}, {city}, {state} {zip5}",
        "period": {"start": birth_date},
    }
    full_name = f"{given} {middle} {family}"
    secret(full_name)

    addresses = [address]
    if old_address:
        addresses.append(
            {
                "use": "old",
                "line": [f"{_digits(rng, 3)} {rng.choice(STREETS)}"],
                "city": rng.choice(CITIES)[0],
                "state": "MA",
                "postalCode": rng.choice(CITIES)[2],
            }
        )
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ids["Patient"],
        "meta": {
            "versionId": "3",
            "lastUpdated": visit_start,
            "source": f"http://{ip}/ehr/{mrn}",
            "tag": [{"system": "http://stmungo-hospital.example/tags", "code": mrn}],
        },
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{full_name}, SSN {ssn}, '
            f"born {birth_date}, {street}</div>",
        },
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [{"url": "text", "valueString": f"race as told by {given}"}],
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                "valueString": mothers_maiden,
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"city": city, "state": state, "postalCode": zip5},
            },
            {
                "url": "https://vendor.example/fhir/vehicle",
                "valueString": f"VIN {vin} plate {plate}",
            },
            {"url": "https://vendor.example/fhir/biometric", "valueString": fingerprint},
        ],
        "modifierExtension": [{"url": "https://vendor.example/fhir/vip", "valueString": full_name}],
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "SS"}]},
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": ssn,
            },
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR", "display": f"MRN {mrn}"}]},
                "system": "https://stmungo-hospital.example/mrn",
                "value": mrn,
                "assigner": {"reference": full_url("Organization"), "display": hospital},
            },
            {
                "type": {"coding": [{"system": V2_0203, "code": "MB"}], "text": f"plan {plan}"},
                "system": "https://insurer.example/members",
                "value": plan,
            },
            {
                "type": {"coding": [{"system": V2_0203, "code": "AN"}]},
                "system": "https://stmungo-hospital.example/accounts",
                "value": account,
            },
            {
                "type": {"coding": [{"system": V2_0203, "code": "DL"}]},
                "system": "urn:oid:2.16.840.1.113883.4.3.25",
                "value": licence,
            },
            {
                "type": {"text": "vehicle"},
                "system": "https://dmv.example/vin",
                "value": vin,
                "period": {"start": visit_day.isoformat()},
            },
        ],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": family,
                "given": [given, middle],
                "prefix": ["Mx."],
                "text": full_name,
                "id": f"name-{ssn}",
            },
            {"use": "nickname", "given": [given[:3] + "ie"]},
        ],
        "_gender": {
            "extension": [
                {
                    "url": "https://vendor.example/gender-note",
                    "valueString": f"told by {spouse_given}",
                }
            ]
        },
        "telecom": [
            {"system": "phone", "value": phone, "use": "home", "rank": 1},
            {"system": "fax", "value": fax, "use": "work"},
            {"system": "email", "value": email},
            {"system": "url", "value": homepage},
        ],
        "gender": gender,
        "birthDate": birth_date,
        "_birthDate": {
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                    "valueDateTime": birth_time,
                }
            ]
        },
        "deceasedBoolean": False,
        "address": addresses,
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                    "display": "Married",
                }
            ],
            "text": f"married to {spouse_given} {spouse_family}",
        },
        "multipleBirthInteger": 1,
        "photo": [
            {
                "contentType": "image/jpeg",
                "data": photo_b64,
                "url": homepage + "/me.jpg",
                "title": f"{full_name} portrait",
            }
        ],
        "contact": [
            {
                "relationship": [
                    {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}
                        ],
                        "text": "spouse",
                    }
                ],
                "name": {"family": spouse_family, "given": [spouse_given]},
                "telecom": [{"system": "phone", "value": phone}],
                "address": address,
            }
        ],
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English"}]
                },
                "preferred": True,
            }
        ],
        "generalPractitioner": [
            ref("Practitioner", f"Dr. {practitioner_given} {practitioner_family}")
        ],
        "managingOrganization": ref("Organization", hospital),
        "link": [
            {"other": {"reference": f"Patient/{mrn}", "display": full_name}, "type": "seealso"}
        ],
        "nickname2": f"non-FHIR property holding {full_name}",
    }

    practitioner = {
        "resourceType": "Practitioner",
        "id": ids["Practitioner"],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
        "name": [{"family": practitioner_family, "given": [practitioner_given], "prefix": ["Dr."]}],
        "telecom": [{"system": "phone", "value": phone[:4] + "555-0199"}],
        "address": [{"line": [hospital], "city": city, "state": state, "postalCode": zip5}],
        "gender": "female",
        "qualification": [
            {
                "identifier": [{"value": medical_licence}],
                "code": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD"}
                    ],
                    "text": "MD",
                },
                "issuer": {"display": f"Board of {city}"},
            }
        ],
        "photo": [{"url": f"https://staff.stmungo-hospital.example/{practitioner_family}.png"}],
    }
    organization = {
        "resourceType": "Organization",
        "id": ids["Organization"],
        "identifier": [{"system": "https://stmungo-hospital.example/org", "value": account[::-1]}],
        "active": True,
        "name": hospital,
        "alias": [f"{hospital} Annex"],
        "telecom": [{"system": "url", "value": "https://stmungo-hospital.example"}],
        "address": [{"line": [street], "city": city, "state": state, "postalCode": zip5}],
    }
    location = {
        "resourceType": "Location",
        "id": ids["Location"],
        "status": "active",
        "name": clinic_room,
        "alias": [f"{family} family suite"],
        "description": f"Private room booked by {spouse_given} {spouse_family}",
        "mode": "instance",
        "physicalType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "code": "ro",
                    "display": clinic_room,
                }
            ]
        },
        "telecom": [{"system": "phone", "value": fax}],
        "address": {"line": [street], "city": city, "state": state, "postalCode": zip5},
        "position": {"longitude": -71.0 - rng.random(), "latitude": 42.0 + rng.random()},
        "managingOrganization": ref("Organization"),
    }
    encounter = {
        "resourceType": "Encounter",
        "id": ids["Encounter"],
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "VN"}]}, "value": visit_number}
        ],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "type": [
            {
                "coding": [{"system": SNOMED, "code": "32485007", "display": "Hospital admission"}],
                "text": f"admission of {full_name}",
            }
        ],
        "subject": ref("Patient", full_name),
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "ATND",
                            }
                        ]
                    }
                ],
                "period": {"start": visit_start},
                "individual": ref("Practitioner", f"Dr. {practitioner_family}"),
            }
        ],
        "period": {"start": visit_start, "end": visit_end},
        "length": {"value": 3, "unit": "days", "system": UCUM, "code": "d"},
        "reasonCode": [
            {
                "coding": [{"system": SNOMED, "code": "233604007", "display": "Pneumonia"}],
                "text": f"called by {spouse_given} at {phone}",
            }
        ],
        "hospitalization": {
            "preAdmissionIdentifier": {"value": visit_number[::-1]},
            "admitSource": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/admit-source", "code": "emd"}
                ]
            },
        },
        "location": [
            {
                "location": ref("Location", clinic_room),
                "status": "completed",
                "period": {"start": visit_start, "end": visit_end},
            }
        ],
        "serviceProvider": ref("Organization", hospital),
        "contained": [
            {
                "resourceType": "RelatedPerson",
                "id": "rp1",
                "patient": ref("Patient"),
                "name": [{"family": spouse_family, "given": [spouse_given]}],
                "telecom": [{"system": "phone", "value": phone}],
            }
        ],
        "account": [{"reference": "#rp1", "display": account}],
    }
    weight_value = round(rng.uniform(3, 120), 1)
    observations = [
        {
            "resourceType": "Observation",
            "id": ids["Observation1"],
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
            "subject": ref("Patient", f"{family}, {given}"),
            "encounter": ref("Encounter"),
            "effectiveDateTime": visit_start,
            "issued": visit_end[:19] + ".000-05:00",
            "performer": [ref("Practitioner", f"{practitioner_given} {practitioner_family}")],
            "valueQuantity": {
                "value": weight_value,
                "unit": "kg",
                "system": UCUM,
                "code": "kg",
                "extension": [{"url": "https://vendor.example/scale", "valueString": email}],
            },
            "device": ref("Device", f"scale at {ip}"),
            "note": [
                {
                    "authorString": f"{practitioner_given} {practitioner_family}",
                    "time": visit_start,
                    "text": f"Call {given} at {phone} or {email}",
                }
            ],
        },
        {
            "resourceType": "Observation",
            "id": ids["Observation2"],
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "social-history",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "63512-8",
                        "display": "How many people live in your home",
                    }
                ],
                "text": f"household of {family}",
            },
            "subject": ref("Patient"),
            "effectivePeriod": {"start": visit_start, "end": visit_end},
            "valueString": f"Lives with {spouse_given} {spouse_family} at {street}, {city}; car {plate}",
            "component": [
                {
                    "code": {
                        "coding": [{"system": LOINC, "code": "56799-0", "display": "Address"}]
                    },
                    "valueString": f"{street} {city} {zip5}",
                }
            ],
        },
        {
            "resourceType": "Observation",
            "id": ids["Observation3"],
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "30525-0", "display": "Age"}]},
            "subject": ref("Patient"),
            "effectiveDateTime": visit_day.isoformat(),
            "valueQuantity": {"value": age, "unit": "years", "system": UCUM, "code": "a"},
            "contained": [
                {
                    "resourceType": "Practitioner",
                    "id": "informant",
                    "name": [{"family": spouse_family}],
                    "telecom": [{"system": "email", "value": email}],
                }
            ],
            "performer": [{"reference": "#informant", "display": spouse_given}],
        },
        {
            "resourceType": "Observation",
            "id": ids["Observation4"],
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": "https://stmungo-hospital.example/local-codes",
                        "code": account,
                        "display": "internal account test",
                    },
                    {"system": LOINC, "code": "8867-4", "display": f"Heart rate of {given}"},
                ]
            },
            "subject": ref("Patient"),
            "effectiveDateTime": visit_start,
            "valueQuantity": {
                "value": rng.randrange(50, 110),
                "unit": "/min",
                "system": UCUM,
                "code": "/min",
            },
            "interpretation": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": "N",
                        }
                    ]
                }
            ],
            "referenceRange": [
                {
                    "low": {"value": 60, "unit": "/min"},
                    "high": {"value": 100, "unit": "/min"},
                    "text": f"range set by Dr. {practitioner_family}",
                }
            ],
        },
    ]
    condition = {
        "resourceType": "Condition",
        "id": ids["Condition"],
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": SNOMED, "code": "44054006", "display": "Diabetes mellitus type 2"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
            ],
            "text": f"DM2, reported by {email}",
        },
        "subject": ref("Patient", full_name),
        "encounter": ref("Encounter"),
        "onsetDateTime": onset_day.isoformat(),
        "recordedDate": visit_start,
        "onsetString": f"since {spouse_given} left",
        "note": [{"text": f"SSN {ssn} on file; MRN {mrn}"}],
        "asserter": ref("Practitioner", practitioner_family),
    }
    document = {
        "resourceType": "DocumentReference",
        "id": ids["DocumentReference"],
        "masterIdentifier": {
            "system": "urn:ietf:rfc:3986",
            "value": f"urn:oid:1.2.3.{_digits(rng, 8)}",
        },
        "identifier": [{"value": f"DOC-{mrn}"}],
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
        "subject": ref("Patient", full_name),
        "date": visit_end[:19] + "-05:00",
        "author": [ref("Practitioner", f"Dr. {practitioner_family}")],
        "description": f"Discharge summary for {full_name}",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en",
                    "data": note_b64,
                    "url": doc_url,
                    "title": f"{family}_{given}_{birth_date}.txt",
                    "creation": visit_end,
                },
                "format": {
                    "system": "http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem",
                    "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                },
            }
        ],
        "context": {
            "encounter": [ref("Encounter")],
            "period": {"start": visit_start, "end": visit_end},
            "sourcePatientInfo": ref("Patient", full_name),
        },
    }
    device = {
        "resourceType": "Device",
        "id": ids["Device"],
        "identifier": [
            {"system": "https://stmungo-hospital.example/assets", "value": device_serial[::-1]}
        ],
        "udiCarrier": [{"deviceIdentifier": udi[:16], "carrierHRF": udi}],
        "status": "active",
        "serialNumber": device_serial,
        "lotNumber": lot,
        "deviceName": [{"name": f"{family}'s insulin pump", "type": "user-friendly-name"}],
        "modelNumber": f"MODEL-{device_serial}",
        "type": {"coding": [{"system": SNOMED, "code": "69805005", "display": "Insulin pump"}]},
        "patient": ref("Patient"),
        "url": f"http://{ip}:8080/pump",
        "note": [{"text": f"paired with phone of {given}"}],
    }
    coverage = {
        "resourceType": "Coverage",
        "id": ids["Coverage"],
        "identifier": [{"system": "https://insurer.example/policy", "value": plan}],
        "status": "active",
        "subscriberId": plan + "-01",
        "beneficiary": ref("Patient", full_name),
        "dependent": "01",
        "relationship": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                    "code": "self",
                }
            ]
        },
        "period": {"start": visit_day.isoformat()},
        "payor": [{"display": "Acme Health Plan", "identifier": {"value": group_number}}],
        "class": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                            "code": "group",
                        }
                    ]
                },
                "value": group_number,
                "name": f"{hospital} staff plan",
            }
        ],
    }
    medication = {
        "resourceType": "MedicationRequest",
        "id": ids["MedicationRequest"],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "860975",
                    "display": "metformin 500 MG",
                }
            ]
        },
        "subject": ref("Patient", full_name),
        "authoredOn": visit_start,
        "requester": ref("Practitioner", practitioner_family),
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": f"take with dinner; questions: {phone}",
                "timing": {
                    "repeat": {
                        "frequency": 2,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {"start": visit_day.isoformat()},
                    }
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": 500, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
        "note": [{"text": f"pharmacy account {account}"}],
    }
    immunization = {
        "resourceType": "Immunization",
        "id": ids["Immunization"],
        "status": "completed",
        "vaccineCode": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/cvx",
                    "code": "140",
                    "display": "Influenza, seasonal",
                }
            ]
        },
        "patient": ref("Patient", full_name),
        "occurrenceDateTime": visit_start,
        "primarySource": True,
        "lotNumber": lot,
        "expirationDate": (visit_day + timedelta(days=200)).isoformat(),
        "performer": [{"actor": ref("Practitioner", practitioner_family)}],
    }
    secret((visit_day + timedelta(days=200)).isoformat())

    resources: list[tuple[str, dict[str, Any]]] = [
        ("Patient", patient),
        ("Practitioner", practitioner),
        ("Organization", organization),
        ("Location", location),
        ("Encounter", encounter),
        ("Observation1", observations[0]),
        ("Observation2", observations[1]),
        ("Observation3", observations[2]),
        ("Observation4", observations[3]),
        ("Condition", condition),
        ("DocumentReference", document),
        ("Device", device),
        ("Coverage", coverage),
        ("MedicationRequest", medication),
        ("Immunization", immunization),
    ]
    bundle = {
        "resourceType": "Bundle",
        "id": f"bundle-{mrn}",
        "identifier": {"system": "https://stmungo-hospital.example/bundles", "value": account},
        "meta": {"lastUpdated": visit_end},
        "type": "transaction" if urn else "collection",
        "timestamp": visit_end,
        "link": [
            {
                "relation": "self",
                "url": f"https://fhir.stmungo-hospital.example/r4/Patient?name={family}",
            }
        ],
        "entry": [],
    }
    for kind, resource in resources:
        entry: dict[str, Any] = {"fullUrl": full_url(kind), "resource": resource}
        if urn:
            entry["request"] = {
                "method": "POST",
                "url": rtype(kind) if kind != "Patient" else f"Patient?identifier={ssn}",
            }
        bundle["entry"].append(entry)
    # Drop duplicates but keep the order (the tests print the first missing secret).
    unique = list(dict.fromkeys(s for s in secrets if s))
    return SynthPatient(bundle, unique, birth_date, age, zip5, gender, restricted_zip)


def make_population(seed: int, count: int, **kwargs: Any) -> list[SynthPatient]:
    """`count` patients from one seed; the first is 93 and the second lives in a restricted ZIP."""
    rng = random.Random(seed)
    people = []
    for index in range(count):
        extra: dict[str, Any] = dict(kwargs)
        if index == 0:
            extra.setdefault("age", 93)
        if index == 1:
            extra.setdefault("restricted_zip", True)
        people.append(make_patient(rng, **extra))
    return people


def flat_resources(seed: int, total: int) -> list[dict[str, Any]]:
    """About `total` separate resources (Bundle entries) for the benchmark."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < total:
        out.extend(make_patient(rng).resources)
    return out[:total]


def fixed_now() -> datetime:
    """The clock the tests and the benchmark pin."""
    return datetime(NOW_YEAR, 6, 1, 12, 0, 0)
