"""Reading FHIR R4 records for people: what a record holds, and one readable line per resource."""

from ._summary import Synopsis, Tally, describe, line, synopsis

__all__ = ["Synopsis", "Tally", "describe", "line", "synopsis"]
