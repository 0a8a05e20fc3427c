"""Records end to end: import, list, show, remove, damage, and nothing readable at rest."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import Cli, fhir_bundle

PDF = b"%PDF-1.4\n% Zanzibarite-lab-report\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)


def grep_home(home: Path, needles: list[bytes], public: bytes) -> list[str]:
    """Every (file, needle) where a needle appears in any file of the home, raw or as hex.

    ``public`` (the wallet's DID) is cut out first: its random base58 holds a short needle
    such as "fhir" now and then by chance."""
    hits = []
    for path in home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes().replace(public, b"\0")
            for needle in needles:
                for form in (needle, needle.hex().encode(), needle.lower()):
                    if form and form in blob:
                        hits.append(f"{path.name}:{needle!r}")
    return hits


def test_add_list_show_rm_round_trip(wallet: Cli, tmp_path: Path) -> None:
    fhir = tmp_path / "Veridiana_Quixotica_labs.json"
    fhir.write_text(json.dumps(fhir_bundle("Veridianaq", "Quixoticam")))
    pdf = tmp_path / "Ultramarine-discharge.pdf"
    pdf.write_bytes(PDF)
    png = tmp_path / "xray.png"
    png.write_bytes(PNG)
    added = wallet.ok("record", "add", fhir, pdf, png, "--tag", "cardiology", "--json").json()["records"]
    assert [r["type"] for r in added] == ["fhir", "pdf", "image"]
    assert all(len(r["commitment"]) == 64 for r in added)
    listing = wallet.ok("record", "list", "--json").json()["records"]
    assert [r["id"] for r in listing] == [r["id"] for r in added]
    assert set(listing[0]) >= {"id", "type", "label", "tags", "size", "added"}
    assert listing[0]["label"] == fhir.name and listing[0]["tags"] == ["cardiology"]
    assert [r["id"] for r in wallet.ok("record", "list", "--type", "pdf", "--json").json()["records"]] == [added[1]["id"]]
    assert wallet.ok("record", "list", "--tag", "none", "--json").json()["records"] == []

    for record, original in zip(added, (fhir, pdf, png), strict=True):
        out = tmp_path / f"out-{record['id']}"
        wallet.ok("record", "show", record["id"], "--out", out)
        assert out.read_bytes() == original.read_bytes()
    # FHIR JSON goes to stdout byte for byte; a unique id prefix works too
    ids = [r["id"] for r in added]
    size = next(n for n in range(6, 17) if sum(i.startswith(ids[0][:n]) for i in ids) == 1)
    proc = wallet("record", "show", ids[0][:size])
    assert proc.code == 0 and proc.out.encode() == fhir.read_bytes()

    wallet.ok("record", "rm", added[1]["id"])
    assert wallet("record", "show", added[1]["id"]).code == 3
    assert not (wallet.home / "blobs" / added[1]["id"]).exists()
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 2


def test_nothing_about_a_record_is_readable_at_rest(wallet: Cli, tmp_path: Path) -> None:
    source = tmp_path / "Wolfenschiessen-Margarethe-hiv-result.json"
    bundle = fhir_bundle("Wolfenschiessen", "Margarethe")
    bundle["entry"][1]["resource"]["code"]["text"] = "Hyperchlorhydria-Zq"
    source.write_text(json.dumps(bundle))
    label = "Psychiatry intake Brightwater"
    wallet.ok("record", "add", source, "--label", label, "--tag", "oncology-xyz")
    needles = [b"Wolfenschiessen", b"Margarethe", b"Hyperchlorhydria", b"hiv-result",
               b"Psychiatry intake", b"Brightwater", b"oncology-xyz", b"1961-04-12",
               b"resourceType", b"Observation", b"fhir"]
    assert grep_home(wallet.home, needles, wallet.ok("id").out.strip().encode()) == []
    # and the record is still there, whole
    assert wallet.ok("record", "list", "--json").json()["records"][0]["label"] == label
    assert wallet.ok("doctor", "--json").json() == {"ok": True, "problems": [], "records": 1, "repaired": 0}


def test_bundle_counts_and_type_checks(wallet: Cli, tmp_path: Path) -> None:
    notjson = tmp_path / "notes.txt"
    notjson.write_text("just some words")
    result = wallet("record", "add", notjson, "--type", "fhir")
    assert result.code == 2 and "not JSON" in result.err
    plain = tmp_path / "plain.json"
    plain.write_text('{"a": 1}')
    result = wallet("record", "add", plain, "--type", "fhir")
    assert result.code == 2 and "resourceType" in result.err
    assert wallet.ok("record", "add", plain, "--json").json()["records"][0]["type"] == "other"
    assert wallet.ok("record", "add", notjson, "--json").json()["records"][0]["type"] == "other"


def test_bad_inputs_lose_nothing(wallet: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(fhir_bundle()))
    wallet.ok("record", "add", good)
    missing = wallet("record", "add", tmp_path / "missing.pdf")
    assert missing.code == 3 and missing.err.startswith("error: ")
    directory = wallet("record", "add", tmp_path)
    assert directory.code == 2 and "directory" in directory.err
    # a bad file anywhere in the list stops before anything is imported
    assert wallet("record", "add", good, tmp_path / "missing.pdf").code == 3
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 1


def test_corrupted_blob_is_named_by_doctor_and_refused_by_show(wallet: Cli, tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(PDF * 30)  # several chunks
    good_id, bad_id = (wallet.ok("record", "add", source, "--allow-duplicate", "--json")
                       .json()["records"][0]["id"] for _ in range(2))
    blob = wallet.home / "blobs" / bad_id
    data = bytearray(blob.read_bytes())
    data[-100] ^= 1
    blob.write_bytes(bytes(data))
    doctor = wallet("doctor", "--json")
    assert doctor.code == 1
    assert doctor.json() == {"ok": False, "problems": [
        {"record": bad_id, "problem": f"record {bad_id}: encrypted stream failed authentication"}],
        "records": 2, "repaired": 0}
    out = tmp_path / "out.pdf"
    shown = wallet("record", "show", bad_id, "--out", out)
    assert shown.code == 1 and not out.exists()
    stdout = wallet("record", "show", bad_id, "--out", "-")
    assert stdout.code == 1 and stdout.out == ""
    wallet.ok("record", "show", good_id, "--out", out)
    # a missing blob, and a swapped one, are named too
    blob.unlink()
    assert wallet("doctor", "--json").json()["problems"][0]["record"] == bad_id


def test_swapped_metadata_rows_fail_authentication(wallet: Cli, tmp_path: Path) -> None:
    for name in ("one.pdf", "two.pdf"):
        (tmp_path / name).write_bytes(PDF + name.encode())
        wallet.ok("record", "add", tmp_path / name)
    db = sqlite3.connect(wallet.home / "vault.sqlite")
    rows = db.execute("SELECT id, meta FROM records ORDER BY seq").fetchall()
    db.execute("UPDATE records SET meta=? WHERE id=?", (rows[1][1], rows[0][0]))
    db.commit()
    db.close()
    assert wallet("doctor").code == 1
    assert wallet("record", "show", rows[0][0], "--out", tmp_path / "x").code == 1


def test_binary_to_a_terminal_is_refused(wallet: Cli, tmp_path: Path) -> None:
    import pty

    (tmp_path / "x.png").write_bytes(PNG)
    record_id = wallet.ok("record", "add", tmp_path / "x.png", "--json").json()["records"][0]["id"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "healthwallet", "record", "show", record_id], wallet.env)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert b"refusing to write binary content to a terminal" in output


def test_read_only_home_is_a_clear_error(wallet: Cli, tmp_path: Path) -> None:
    source = tmp_path / "a.pdf"
    source.write_bytes(PDF)
    home = str(wallet.home)
    if os.geteuid() == 0:
        # root ignores permission bits: mount the home read-only in a private namespace
        script = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
                  f'exec {sys.executable} -m healthwallet record add "$1"')
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(source)],
                              env=wallet.env, capture_output=True, timeout=60)
        code, err = proc.returncode, proc.stderr.decode()
    else:
        os.chmod(wallet.home / "blobs", 0o500)
        os.chmod(wallet.home, 0o500)
        try:
            result = wallet("record", "add", source)
        finally:
            os.chmod(wallet.home, 0o700)
            os.chmod(wallet.home / "blobs", 0o700)
        code, err = result.code, result.err
    assert code == 2, err
    assert err.startswith("error: ") and "read-only" in err and "Traceback" not in err
    assert wallet.ok("record", "list", "--json").json()["records"] == []


def test_full_disk_is_a_clear_error_and_loses_nothing(wallet: Cli, tmp_path: Path) -> None:
    small = tmp_path / "small.pdf"
    small.write_bytes(PDF)
    wallet.ok("record", "add", small)
    big = tmp_path / "big.pdf"
    big.write_bytes(PDF * 200)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = wallet("record", "add", big, preexec_fn=limit)
    assert result.code == 2, result
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    assert wallet.ok("doctor", "--json").json()["ok"] is True
    assert len(wallet.ok("record", "list", "--json").json()["records"]) == 1
    assert not [p for p in (wallet.home / "blobs").iterdir() if p.name.startswith(".tmp")]


def test_the_wallet_index_is_sqlite_in_wal_mode(wallet: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(PDF)
    wallet.ok("record", "add", tmp_path / "a.pdf")
    db = sqlite3.connect(wallet.home / "vault.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    assert columns == {"seq", "id", "wrapped_key", "meta"}
    db.close()


def test_progress_is_on_stderr_only(wallet: Cli, tmp_path: Path) -> None:
    files = []
    for i in range(6):
        path = tmp_path / f"f{i}.pdf"
        path.write_bytes(PDF + bytes([i]))
        files.append(path)
    result = wallet.ok("record", "add", *files, "--json")
    assert len(json.loads(result.out)["records"]) == 6


def test_deeply_nested_fhir_is_bad_input_not_a_crash(wallet: Cli, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"resourceType": "Bundle", "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    result = wallet("record", "add", deep, "--type", "fhir")
    assert result.code == 2, result
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    # undeclared, it is stored as an opaque record rather than crash the type detection
    assert wallet.ok("record", "add", deep, "--json").json()["records"][0]["type"] == "other"
