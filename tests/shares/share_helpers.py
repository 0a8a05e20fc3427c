"""Shared pieces for the share tests: identities, synthetic patients, a pinned clock."""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deid"))

from leaks import leaked  # noqa: F401  (re-exported for the share tests)
from synth import SynthPatient, make_patient

from healthwallet import shares
from healthwallet.deid import load_policy
from healthwallet.issued import IssuedGrants
from healthwallet.keys import Identity

RESEARCH = Identity(hashlib.sha256(b"research group").digest())
OTHER_GROUP = Identity(hashlib.sha256(b"another research group").digest())
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=30)
LATER = NOW + timedelta(hours=1)
POLICY = load_policy("safe-harbor")
PSEUDONYM = re.compile(r"[0-9a-f]{64}")


def patient_identity(number: int) -> Identity:
    """The wallet identity of synthetic patient ``number``."""
    return Identity(hashlib.sha256(f"patient {number}".encode()).digest())


def dataset_for(
    identity: Identity, people: Iterable[SynthPatient], study: str = "study-A"
) -> shares.Dataset:
    """De-identify the patient's Bundles for ``study`` the way `share` does."""
    records = [(f"{i:016x}", json.dumps(p.bundle).encode()) for i, p in enumerate(people)]
    return shares.prepare_dataset(records, POLICY, shares.pseudonym_keys(identity, study), now=NOW)


@dataclass
class Shared:
    """One share file: its bytes, id, registry and what went into it."""

    data: bytes
    share_id: str
    registry: IssuedGrants
    dataset: shares.Dataset
    summary: shares.ShareSummary


def share(
    home: Path,
    identity: Identity,
    people: Iterable[SynthPatient],
    *,
    study: str = "study-A",
    recipient: Identity = RESEARCH,
    expires: datetime = EXPIRES,
    fmt: str = "ldp",
    dataset: shares.Dataset | None = None,
) -> Shared:
    """Issue a share from ``identity`` (registry in ``home``) the way the CLI does."""
    registry = IssuedGrants(home, identity, clock=lambda: NOW)
    data = dataset if dataset is not None else dataset_for(identity, people, study)
    reservation = registry.reserve(recipient.did, expires)
    out = io.BytesIO()
    summary = shares.issue_share(
        out,
        identity,
        recipient.did,
        data,
        study=study,
        purpose="observational cardiology study",
        policy=POLICY,
        expires=expires,
        credential_status=reservation.entry,
        now=NOW,
        share_id=reservation.grant_id,
        fmt=fmt,  # type: ignore[arg-type]
    )
    registry.confirm_consent(reservation, study)
    return Shared(out.getvalue(), reservation.grant_id, registry, data, summary)


def person(seed: int, **kwargs: Any) -> SynthPatient:
    """One synthetic patient from a seed."""
    import random

    return make_patient(random.Random(seed), **kwargs)
