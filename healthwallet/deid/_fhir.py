"""FHIR R4 facts the de-identification engine needs: resource and data type names."""

from __future__ import annotations

import re
from typing import Any

from healthwallet import jsonutil
from healthwallet.errors import BadInputError

# FHIR R4 (4.0.1) resource types, https://hl7.org/fhir/R4/resourcelist.html
R4_RESOURCE_TYPES: frozenset[str] = frozenset(
    """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement
    CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse
    ClinicalImpression CodeSystem Communication CommunicationRequest CompartmentDefinition
    Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
    Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal
    GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
    ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice
    Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
    MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
    MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
    Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
    PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
    RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
    RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
    SpecimenDefinition StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid
    SubstancePolymer SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial
    SubstanceSpecification SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport
    TestScript ValueSet VerificationResult VisionPrescription
    """.split()
)

# Type names that may follow a choice element's stem (`value[x]` -> valueQuantity ...),
# https://hl7.org/fhir/R4/formats.html#choice and https://hl7.org/fhir/R4/datatypes.html
CHOICE_TYPE_SUFFIXES: frozenset[str] = frozenset(
    """
    Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid
    PositiveInt String Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment
    CodeableConcept Coding ContactPoint Count Distance Duration HumanName Identifier Money Period
    Quantity Range Ratio Reference SampledData Signature Timing ContactDetail Contributor
    DataRequirement Expression ParameterDefinition RelatedArtifact TriggerDefinition UsageContext
    Dosage Meta
    """.split()
)

# A JSON property name that FHIR could produce (element, primitive extension `_x`, resourceType).
_ELEMENT_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}\Z")

# Where Bundle.entry.resource and DomainResource.contained must hold a resource.
_RESOURCE_SLOTS = ("contained",)


def is_element_name(name: str) -> bool:
    """Whether a JSON property name has the shape of a FHIR element name."""
    return _ELEMENT_NAME.match(name) is not None


def check_resource(resource: Any, where: str = "input") -> str:
    """Refuse anything that is not a FHIR R4 resource; return its resource type."""
    if not isinstance(resource, dict):
        raise BadInputError(f"{where} is not a FHIR resource (expected a JSON object)")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise BadInputError(f"{where} is not a FHIR resource (no resourceType)")
    if resource_type not in R4_RESOURCE_TYPES:
        # The unknown value is not echoed: it is input data.
        raise BadInputError(f"{where} has a resourceType that is not a FHIR R4 resource type")
    for slot in _RESOURCE_SLOTS:
        contained = resource.get(slot)
        if contained is None:
            continue
        if not isinstance(contained, list):
            raise BadInputError(f"{where}.{slot} is not a list of resources")
        for index, item in enumerate(contained):
            check_resource(item, f"{where}.{slot}[{index}]")
    if resource_type == "Bundle":
        entries = resource.get("entry", [])
        if not isinstance(entries, list):
            raise BadInputError(f"{where}.entry is not a list")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise BadInputError(f"{where}.entry[{index}] is not a JSON object")
            if "resource" in entry:
                check_resource(entry["resource"], f"{where}.entry[{index}].resource")
    return resource_type


def _not_json(constant: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON (RFC 8259)")


def parse_fhir_json(data: bytes | str) -> dict[str, Any]:
    """Parse FHIR R4 JSON text, refusing anything that is not a FHIR resource or Bundle."""
    try:
        parsed = jsonutil.loads(data, parse_constant=_not_json)
    except UnicodeDecodeError as exc:
        raise BadInputError("input is not JSON (FHIR R4 JSON expected)") from exc
    except ValueError as exc:
        if "nested too deeply" in str(exc):
            raise BadInputError("input JSON is nested too deeply") from exc
        raise BadInputError("input is not JSON (FHIR R4 JSON expected)") from exc
    check_resource(parsed)
    resource: dict[str, Any] = parsed
    return resource
