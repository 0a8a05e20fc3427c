"""A small grant made with the real CLI, and a home with no wallet to verify it from."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Cli, base_env, fhir_bundle
from local_status import status_path

# A recipient with no wallet here: verify checks everything but the recipient.
DOCTOR_DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def small_grant(root: Path) -> tuple[dict[str, str], Path, str]:
    """(environment whose home has no wallet, a one-record grant, its status list file)."""
    env = base_env(root)
    patient = Cli(root / "patient", dict(env, HEALTHWALLET_HOME=str(root / "patient"),
                                         HEALTHWALLET_PASSPHRASE="patient passphrase words"))
    patient.ok("init", "--keystore", "file")
    labs = root / "labs.json"
    labs.write_text(json.dumps(fhir_bundle()))
    patient.ok("record", "add", labs, "--tag", "t")
    grant = root / "small.hwgrant"
    patient.ok("grant", DOCTOR_DID, "--tag", "t", "--expires", "7d", "--out", grant)
    listed = status_path(grant.read_bytes())
    assert listed is not None
    return dict(env, HEALTHWALLET_HOME=str(root / "nobody")), grant, listed
