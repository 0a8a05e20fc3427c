"""Benchmark: the share of clinically meaningful facts that survive de-identification.

Run: .venv/bin/python benchmarks/bench_deid_utility.py [--patients N] [--policy safe-harbor]
         [--compare /path/to/other/checkout]

The corpus is tests/deid/synth_clinical.py (realistic FHIR R4 patients: encounters,
conditions, labs, vitals, medications, immunisations, procedures, imaging, questionnaires,
allergies, family history, claims). A fact is a Coding, a Quantity or Money, a date's year or
a clinical primitive (see `clinical_facts`); utility is facts kept / facts in the input.
With --compare, the same corpus and the same counting run against the `healthwallet` of the
other checkout (e.g. the main branch) in a subprocess, and both figures are printed: before
and after, measured in the same run. Prints JSON; exits 1 if this checkout misses the target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "deid"))

from synth_clinical import clinical_facts, make_corpus  # noqa: E402

TARGET = 0.95
"""Safe Harbor keeps at least 95% of the clinically meaningful facts of the corpus."""


def measure(patients: int, policy_name: str) -> dict[str, Any]:
    """Utility of `policy_name` with the healthwallet on sys.path, overall and per type."""
    from datetime import datetime

    from healthwallet.deid import PseudonymKeys, deidentify, load_policy

    policy = load_policy(policy_name)
    now = datetime(2025, 6, 1, 12, 0, 0)
    before: Counter[tuple[Any, ...]] = Counter()
    after: Counter[tuple[Any, ...]] = Counter()
    for index, bundle in enumerate(make_corpus(2025, patients)):
        keys = PseudonymKeys.derive(f"utility-patient-{index:06d}-secret".encode(), "study-U")
        out = deidentify(bundle, policy, keys, now=now, report=False).resource
        before += clinical_facts(bundle)
        after += clinical_facts(out)
    kept = before & after
    by_type: dict[str, list[int]] = {}
    for fact, count in before.items():
        entry = by_type.setdefault(str(fact[0]), [0, 0])
        entry[0] += count
        entry[1] += kept.get(fact, 0)
    total, survived = sum(before.values()), sum(kept.values())
    return {
        "policy": policy_name,
        "patients": patients,
        "facts": total,
        "kept": survived,
        "utility": round(survived / total, 4),
        "by_type": {t: round(k / n, 3) for t, (n, k) in sorted(by_type.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--policy", default="safe-harbor")
    parser.add_argument("--compare", type=Path, help="another checkout to measure beside this")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.patients, args.policy)))
        return
    result: dict[str, Any] = {"target": TARGET}
    if args.compare is not None:
        env = dict(os.environ, PYTHONPATH=str(args.compare.resolve()))
        argv = [sys.executable, __file__, "--worker", "--patients", str(args.patients)]
        argv += ["--policy", args.policy]
        done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        result["before"] = {"checkout": str(args.compare), **json.loads(done.stdout)}
    result["after"] = {"checkout": str(ROOT), **measure(args.patients, args.policy)}
    result["meets_target"] = result["after"]["utility"] >= TARGET
    print(json.dumps(result, indent=2))
    if not result["meets_target"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
