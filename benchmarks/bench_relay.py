"""Benchmark: SMART Health Links resolutions on `healthwallet relay serve`, and memory while
streaming a 100 MiB file.

Three endpoints, each loaded by autocannon (tests/node) over TLS on 127.0.0.1 in the same run:
- ``bare``: a bare Starlette endpoint under the same uvicorn TLS settings, which reads the JSON
  request and answers a manifest of the same size (the framework's own cost, the baseline);
- ``embedded``: the relay's manifest POST for a link whose ~1 KiB JWE is embedded;
- ``location``: the same with ``embeddedLengthMax: 0``, so each answer mints a one-hour
  single-use ``location`` URL (one more database write per request).
Target: each relay figure is at least 0.5x the bare endpoint's resolutions per second.

Memory: a link with one 100 MiB JWE is uploaded, the relay is restarted on the same database,
and the file is downloaded through its ``location``. The relay's peak RSS (VmHWM) after the
download, minus its peak before it, must stay small (target: under 64 MiB): the file streams in
1 MiB chunks instead of being loaded.

Run:  .venv/bin/python benchmarks/bench_relay.py [--seconds 8] [--connections 10]
(needs tests/node/node_modules; symlink it from the main checkout in a worktree). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from _util import report  # noqa: E402
from tlsca import certificates  # noqa: E402

from healthwallet import keys  # noqa: E402
from healthwallet.relay import protocol  # noqa: E402

AUTOCANNON = ROOT / "tests" / "node" / "node_modules" / ".bin" / "autocannon"
PATIENT = keys.Identity(b"\x07" * 32)
MIB = 1 << 20


def make_jwe(size: int) -> str:
    """A compact JWE (dir, A256GCM) whose ciphertext part is about ``size`` characters.

    The bytes are random, not a real encryption: the relay never decrypts, it stores and serves.
    """
    header = keys.b64url(b'{"alg":"dir","enc":"A256GCM","cty":"application/fhir+json"}')
    body = keys.b64url(os.urandom(size * 3 // 4))
    return ".".join([header, "", keys.b64url(os.urandom(12)), body, keys.b64url(os.urandom(16))])


def bare_server(cert: str, key: str, answer_size: int) -> None:
    """Serve the baseline endpoint (run in its own process by ``--bare``)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    jwe = make_jwe(answer_size)

    async def manifest(request: Request) -> Response:
        wanted = json.loads(await request.body())
        files = [{"contentType": "application/fhir+json", "embedded": jwe}]
        body = json.dumps({"files": files, "status": "finalized", "r": wanted["recipient"]})
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/m/{link_id}", manifest, methods=["POST"])])
    sock = __import__("socket").create_server(("127.0.0.1", 0), backlog=1024)
    sys.stdout.write(f"bare serving https://127.0.0.1:{sock.getsockname()[1]}/\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, ssl_certfile=cert, ssl_keyfile=key, access_log=False,
                            log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server subprocess that prints its URL as the third word of its first line."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line:
        raise SystemExit(proc.stderr.read().decode() if proc.stderr else "server did not start")
    try:
        yield line.split()[2], proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def autocannon(url: str, body: dict[str, Any], seconds: int, connections: int,
               env: dict[str, str]) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) of POSTing ``body`` to ``url``."""
    argv = [str(AUTOCANNON), "--json", "-c", str(connections), "-d", str(seconds),
            "-m", "POST", "-H", "content-type=application/json", "-b", json.dumps(body), url]
    done = subprocess.run(argv, env=env, capture_output=True, check=True)
    figures = json.loads(done.stdout)
    if figures["non2xx"] or figures["errors"]:
        raise SystemExit(f"{url}: {figures['non2xx']} non-2xx answers, {figures['errors']} errors")
    return {
        "requests_per_second": figures["requests"]["average"],
        "p50_ms": figures["latency"]["p50"],
        "p99_ms": figures["latency"]["p99"],
        "requests": figures["requests"]["total"],
    }


def signed(client: httpx.Client, base: str, method: str, path: str, body: Any) -> httpx.Response:
    raw = json.dumps(body).encode()
    header = protocol.sign_request(PATIENT, method, "/" + path, raw, int(time.time()))
    return client.request(method, base + path, content=raw, headers={"Authorization": header})


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process so far, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--bare", nargs=3, metavar=("CERT", "KEY", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_server(args.bare[0], args.bare[1], int(args.bare[2]))
        return
    if not AUTOCANNON.exists():
        raise SystemExit(f"missing {AUTOCANNON}: run npm ci in tests/node")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        ca, cert, key = certificates(tmp)
        env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(ca), PYTHONPATH=str(ROOT))
        serve = [sys.executable, "-m", "healthwallet", "relay", "serve", "--cert", str(cert),
                 "--key", str(key), "--port", "0", "--db", str(tmp / "relay.db"),
                 "--allow-patient", PATIENT.did, "--rate", "0", "--max-upload-mib", "256"]
        context = ssl.create_default_context(cafile=str(ca))
        small = make_jwe(1024)
        results: dict[str, Any] = {}
        with running(serve, env) as (first, _proc), httpx.Client(verify=context, timeout=600) as c:
            url = first
            made = signed(c, url, "POST", protocol.API_LINKS, {"files": [
                {"contentType": "application/fhir+json", "jwe": small}]}).json()
            big = signed(c, url, "POST", protocol.API_LINKS, {"files": [
                {"contentType": "application/fhir+json", "jwe": make_jwe(100 * MIB)}]}).json()
            request = {"recipient": "benchmark"}
            results["embedded"] = autocannon(made["url"], request, args.seconds,
                                             args.connections, env)
            results["location"] = autocannon(made["url"], {**request, "embeddedLengthMax": 0},
                                             args.seconds, args.connections, env)
        bare = [sys.executable, __file__, "--bare", str(cert), str(key), str(len(small))]
        with running(bare, env) as (bare_url, _proc):
            results["bare"] = autocannon(bare_url + "m/x", request, args.seconds,
                                         args.connections, env)
        for name in ("embedded", "location"):
            results[f"{name}_ratio_vs_bare"] = round(
                results[name]["requests_per_second"] / results["bare"]["requests_per_second"], 3)
        # Memory while serving the 100 MiB file, in a relay that did not handle the upload.
        with running(serve, env) as (url, proc), httpx.Client(verify=context, timeout=600) as c:
            before = vm_hwm(proc.pid)
            big_url = url + big["url"].removeprefix(first)
            manifest = c.post(big_url, json={"recipient": "benchmark"}).json()
            received = 0
            start = time.perf_counter()
            with c.stream("GET", manifest["files"][0]["location"]) as answer:
                for part in answer.iter_bytes():
                    received += len(part)
            seconds = time.perf_counter() - start
            after = vm_hwm(proc.pid)
        results["large_file"] = {
            "bytes": received,
            "seconds": round(seconds, 2),
            "relay_peak_rss_before_mib": round(before / MIB, 1),
            "relay_peak_rss_after_mib": round(after / MIB, 1),
            "relay_peak_rss_growth_mib": round((after - before) / MIB, 1),
        }
    report("relay", results)


if __name__ == "__main__":
    main()
