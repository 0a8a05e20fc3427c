"""Reading FHIR R4 records for people: what a record holds, and one readable line per resource."""

from ._summary import Synopsis, describe, synopsis

__all__ = ["Synopsis", "describe", "synopsis"]
