"""The relay over real TLS on 127.0.0.1: the SMART Health Links rules, status code by status code.

Each test runs against the SQLite store and a real PostgreSQL server alike.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from relay_fixtures import (  # noqa: F401 (fixtures)
    Relay,
    jwe_file,
    make_jwe,
    postgres_dsn_fixture,
    postgres_server_fixture,
    relay_fixture,
    store_fixture,
)

from healthwallet import keys
from healthwallet.relay import protocol

ALICE = keys.Identity(b"\x01" * 32)
MALLORY = keys.Identity(b"\x02" * 32)
MISSING = "A" * 43


def test_passcode_link_counts_down_wrong_guesses_then_serves_the_right_one(relay: Relay) -> None:
    link = relay.create(ALICE, flag="P", passcode="1234", passcodeAttempts=3)
    wrong = relay.manifest(link["url"], passcode="0000")
    assert (wrong.status_code, wrong.json()) == (401, {"remainingAttempts": 2})
    assert relay.manifest(link["url"]).status_code == 401  # no passcode: nothing spent
    right = relay.manifest(link["url"], passcode="1234")
    assert right.status_code == 200, right.text
    manifest = right.json()
    assert manifest["status"] == "finalized"
    [entry] = manifest["files"]
    assert entry["contentType"] == "application/fhir+json"
    assert entry["embedded"].count(".") == 4 and "location" not in entry
    assert right.headers["cache-control"] == "no-store"
    # The right passcode gave its attempt back; two more wrong guesses use the budget up.
    assert relay.manifest(link["url"], passcode="x").json() == {"remainingAttempts": 1}
    assert relay.manifest(link["url"], passcode="y").json() == {"remainingAttempts": 0}
    assert relay.manifest(link["url"], passcode="1234").status_code == 404


def test_manifest_request_without_recipient_is_refused_before_any_lookup(relay: Relay) -> None:
    link = relay.create(ALICE)
    for body in ({}, {"recipient": ""}, {"recipient": 7}, {"recipient": "x" * 201}):
        assert relay.client.post(link["url"], json=body).status_code == 400
    assert relay.client.post(link["url"], content=b"[1,").status_code == 400
    assert relay.manifest(link["url"], embeddedLengthMax=-1).status_code == 400
    assert relay.client.post(relay.url + "m/" + MISSING, json={}).status_code == 400


def test_oversized_manifest_request_is_refused(relay: Relay) -> None:
    link = relay.create(ALICE)
    answer = relay.manifest(link["url"], padding="x" * 5000)
    assert answer.status_code == 413


def _shape(answer: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    headers = tuple(sorted((k, v) for k, v in answer.headers.items() if k != "date"))
    return answer.status_code, answer.content, headers


def test_unknown_expired_revoked_and_used_up_links_get_one_identical_404(relay: Relay) -> None:
    expired = relay.create(ALICE, exp=int(relay.clock()) + 60)
    revoked = relay.create(ALICE)
    used_up = relay.create(ALICE, maxUses=1)
    no_attempts = relay.create(ALICE, flag="P", passcode="pw", passcodeAttempts=1)
    assert relay.manifest(used_up["url"]).status_code == 200
    assert relay.manifest(no_attempts["url"], passcode="no").status_code == 401
    assert relay.signed(ALICE, "DELETE", f"{protocol.API_LINKS}/{revoked['id']}").status_code == 200
    relay.clock.offset += 61
    answers = [
        relay.manifest(relay.url + "m/" + MISSING),
        relay.manifest(relay.url + "m/short"),
        relay.manifest(expired["url"]),
        relay.manifest(revoked["url"]),
        relay.manifest(used_up["url"]),
        relay.manifest(no_attempts["url"], passcode="pw"),
        relay.client.get(revoked["url"], params={"recipient": "x"}),  # GET of a non-U link
        relay.client.get(relay.url + "f/" + MISSING),
        relay.client.get(relay.url + "nowhere"),
        relay.signed(MALLORY, "GET", f"{protocol.API_LINKS}/{expired['id']}/log"),
    ]
    shapes = {_shape(answer) for answer in answers}
    assert len(shapes) == 1, shapes
    assert answers[0].status_code == 404


def test_location_urls_are_single_use_and_expire_within_the_hour(relay: Relay) -> None:
    jwe = make_jwe(b"x" * 5000)
    link = relay.create(ALICE, files=[{"contentType": "application/fhir+json", "jwe": jwe}])
    [entry] = relay.manifest(link["url"], embeddedLengthMax=100).json()["files"]
    assert "embedded" not in entry and entry["location"].startswith(relay.url + "f/")
    fetched = relay.client.get(entry["location"])
    assert fetched.status_code == 200 and fetched.text == jwe
    assert fetched.headers["content-type"] == "application/jose"
    assert relay.client.get(entry["location"]).status_code == 404  # used
    [again] = relay.manifest(link["url"], embeddedLengthMax=100).json()["files"]
    relay.clock.offset += 3600
    assert relay.client.get(again["location"]).status_code == 404  # expired


def test_reusable_locations_serve_until_revoked(relay: Relay) -> None:
    link = relay.create(ALICE, singleUseLocations=False)
    [entry] = relay.manifest(link["url"], embeddedLengthMax=0).json()["files"]
    assert relay.client.get(entry["location"]).status_code == 200
    assert relay.client.head(entry["location"]).status_code == 404
    assert relay.client.get(entry["location"]).status_code == 200
    relay.signed(ALICE, "DELETE", f"{protocol.API_LINKS}/{link['id']}")
    assert relay.client.get(entry["location"]).status_code == 404


def test_u_link_serves_its_one_file_to_get_with_recipient(relay: Relay) -> None:
    file = jwe_file()
    link = relay.create(ALICE, flag="U", files=[file])
    answer = relay.client.get(link["url"], params={"recipient": "Dr. U"})
    assert answer.status_code == 200 and answer.text == file["jwe"]
    assert answer.headers["content-type"] == "application/jose"
    assert relay.client.get(link["url"]).status_code == 400
    assert relay.manifest(link["url"]).status_code == 404  # U links are not manifests
    log = relay.signed(ALICE, "GET", f"{protocol.API_LINKS}/{link['id']}/log").json()
    assert [(e["recipient"], e["outcome"]) for e in log["entries"]] == [("Dr. U", "ok")]


def test_long_term_link_serves_new_files_after_update(relay: Relay) -> None:
    link = relay.create(ALICE, flag="L")
    first = relay.manifest(link["url"]).json()
    assert first["status"] == "can-change"
    new = jwe_file(b'{"resourceType":"Bundle","type":"document"}')
    path = f"{protocol.API_LINKS}/{link['id']}"
    assert relay.signed(MALLORY, "PUT", path, {"files": [new]}).status_code == 404
    assert relay.signed(ALICE, "PUT", path, {"files": [new]}).status_code == 200
    [entry] = relay.manifest(link["url"]).json()["files"]
    assert entry["embedded"] == new["jwe"]
    short = relay.create(ALICE)
    path = f"{protocol.API_LINKS}/{short['id']}"
    assert relay.signed(ALICE, "PUT", path, {"files": [new]}).status_code == 409


def test_concurrent_passcode_guesses_never_exceed_the_budget(relay: Relay) -> None:
    budget = 5
    link = relay.create(ALICE, flag="P", passcode="right", passcodeAttempts=budget)
    outcomes: list[int] = []
    lock = threading.Lock()

    def guess(worker: int) -> None:
        for attempt in range(6):
            answer = relay.manifest(link["url"], passcode=f"wrong-{worker}-{attempt}")
            with lock:
                outcomes.append(answer.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(401) == budget, outcomes
    assert set(outcomes) <= {401, 404, 429}
    assert relay.manifest(link["url"], passcode="right").status_code == 404
    log = relay.signed(ALICE, "GET", f"{protocol.API_LINKS}/{link['id']}/log").json()
    assert [e["outcome"] for e in log["entries"]] == ["wrong-passcode"] * budget


def test_access_log_names_recipients_and_outcomes(relay: Relay) -> None:
    link = relay.create(ALICE, flag="P", passcode="pw")
    relay.manifest(link["url"], recipient="Dr. A", passcode="pw")
    relay.manifest(link["url"], recipient="Eve", passcode="guess")
    answer = relay.signed(ALICE, "GET", f"{protocol.API_LINKS}/{link['id']}/log")
    entries: list[dict[str, Any]] = answer.json()["entries"]
    assert [(e["recipient"], e["outcome"]) for e in entries] == [
        ("Dr. A", "ok"), ("Eve", "wrong-passcode")]


@pytest.mark.parametrize(
    "body",
    [
        b'{"recipient": "Dr. \\u0000 Nul"}',
        b'{"recipient": "\\ud800"}',
        b'{"recipient": "line\\nbreak"}',
        b'{"recipient": "x", "passcode": "\\udfff"}',
        b'{"recipient": "x", "embeddedLengthMax": 1e400}',
        b'{"recipient": "x", "recipient": "y"}',
        b'[' * 100_000,
        b"\xff\xfe",
    ],
    ids=["nul", "lone-surrogate", "newline", "surrogate-passcode", "huge-number",
         "duplicate-member", "deep-nesting", "not-utf8"],
)
def test_hostile_manifest_requests_get_400_not_a_crash(relay: Relay, body: bytes) -> None:
    link = relay.create(ALICE, flag="P", passcode="pw")
    answer = relay.client.post(link["url"], content=body)
    assert answer.status_code in (400, 413), answer.text
    assert relay.manifest(link["url"], passcode="pw").status_code == 200  # still served


@pytest.mark.parametrize(
    "fields",
    [
        {"exp": 10**30},
        {"maxUses": 2**63},
        {"flag": "P", "passcode": "\ud800"},
        {"flag": "P", "passcode": "nul\u0000"},
        {"files": [{"contentType": "application/fhir+json",
                    "jwe": keys.b64url(b"[" * 700) + "..iv.ct.tag"}]},
        {"files": [{"contentType": "application/fhir+json",
                    "jwe": keys.b64url(b'{"alg":"dir","enc":"A256GCM"' + b" " * 2000 + b"}")
                    + "..iv.ct.tag"}]},
    ],
    ids=["huge-exp", "huge-max-uses", "surrogate-passcode", "nul-passcode", "nested-header",
         "long-header"],
)
def test_hostile_create_requests_get_400_not_a_crash(relay: Relay, fields: dict[str, Any]) -> None:
    fields.setdefault("files", [jwe_file()])
    raw = json.dumps(fields).encode()
    header = protocol.sign_request(ALICE, "POST", "/" + protocol.API_LINKS, raw,
                                   int(relay.clock()))
    answer = relay.client.post(relay.url + protocol.API_LINKS, content=raw,
                               headers={"Authorization": header})
    assert answer.status_code == 400, answer.text
