"""Research ingest: verify, decrypt and merge many patients' shares into a k-anonymous dataset."""

from ._ingest import REPORT_FILE, REPORT_FORMAT, IngestResult, Rejection, ingest

__all__ = ["REPORT_FILE", "REPORT_FORMAT", "IngestResult", "Rejection", "ingest"]
