"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of_commands(
    argv: list[str], repeat: int = 15, env: dict[str, str] | None = None
) -> float:
    """Median wall time of a command run ``repeat`` times, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_of(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Peak resident set size (bytes) of a command.

    Measured through a small wrapper process: a child's ru_maxrss includes what it inherited
    at fork time, so forking straight from a large benchmark process would overstate it.
    """
    wrapper = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], env=env, check=True, capture_output=True
    ).stdout
    return int(out.decode().strip()) * 1024


def report(name: str, figures: dict[str, Any]) -> None:
    """Print one JSON line with the benchmark's figures."""
    sys.stdout.write(json.dumps({"benchmark": name, **figures}, indent=2) + "\n")


def self_peak_rss() -> int:
    """Peak RSS of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
