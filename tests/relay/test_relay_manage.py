"""The relay's signed management API and its limits, over real TLS on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from relay_fixtures import (  # noqa: F401 (fixtures)
    Relay,
    jwe_file,
    postgres_dsn_fixture,
    postgres_server_fixture,
    relay_fixture,
    running_relay,
    store_fixture,
)

from healthwallet import keys
from healthwallet.relay import protocol
from healthwallet.relay.sqlite_store import SqliteStore

ALICE = keys.Identity(b"\x01" * 32)
MALLORY = keys.Identity(b"\x02" * 32)
LINKS = protocol.API_LINKS


def test_unsigned_tampered_and_stale_requests_are_refused(relay: Relay) -> None:
    unsigned = relay.client.post(relay.url + LINKS, json={"files": [jwe_file()]})
    assert unsigned.status_code == 401 and unsigned.headers["www-authenticate"] == "HW-Sig"
    body = b'{"files":[]}'
    header = protocol.sign_request(ALICE, "POST", "/" + LINKS, body, int(relay.clock()))
    tampered = relay.client.post(relay.url + LINKS, content=b'{"files":[1]}',
                                 headers={"Authorization": header})
    assert tampered.status_code == 401
    stale = protocol.sign_request(ALICE, "GET", "/" + LINKS, b"", int(relay.clock()) - 301)
    assert relay.client.get(relay.url + LINKS, headers={"Authorization": stale}).status_code == 401


def test_replayed_request_is_refused(relay: Relay) -> None:
    nonce = keys.b64url(b"n" * 16)
    assert relay.signed(ALICE, "GET", LINKS, nonce=nonce).status_code == 200
    replay = relay.signed(ALICE, "GET", LINKS, nonce=nonce)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]


def test_only_the_creator_sees_or_changes_a_link(relay: Relay) -> None:
    link = relay.create(ALICE, flag="L")
    path = f"{LINKS}/{link['id']}"
    for method, suffix, body in [("GET", "", None), ("GET", "/log", None),
                                 ("PUT", "", {"files": [jwe_file()]}), ("DELETE", "", None)]:
        assert relay.signed(MALLORY, method, path + suffix, body).status_code == 404
    assert relay.signed(MALLORY, "GET", LINKS).json() == {"links": []}
    mine = relay.signed(ALICE, "GET", LINKS).json()["links"]
    assert [(item["id"], item["url"], item["revoked"]) for item in mine] == [
        (link["id"], link["url"], False)]
    assert relay.manifest(link["url"]).status_code == 200


def test_revocation_works_at_once(relay: Relay) -> None:
    link = relay.create(ALICE)
    assert relay.manifest(link["url"]).status_code == 200
    revoked = relay.signed(ALICE, "DELETE", f"{LINKS}/{link['id']}")
    assert revoked.json() == {"id": link["id"], "revoked": True}
    assert relay.manifest(link["url"]).status_code == 404
    assert relay.signed(ALICE, "GET", f"{LINKS}/{link['id']}").json()["revoked"] is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"flag": "PL", "passcode": "x"}, "alphabetical"),
        ({"flag": "PU", "passcode": "x"}, "cannot have a passcode"),
        ({"flag": "P"}, "passcode goes with flag P"),
        ({"passcode": "x"}, "passcode goes with flag P"),
        ({"exp": 1}, "not in the future"),
        ({"label": "my labs"}, "unknown member"),
        ({"files": []}, "non-empty"),
        ({"files": [{"contentType": "text/plain", "jwe": "a.b.c.d.e"}]}, "not an SHL file type"),
        ({"files": [{"contentType": "application/fhir+json", "jwe": "plain text"}]},
         "not a compact JWE"),
        ({"files": [{"contentType": "application/fhir+json", "jwe": "eyJ9.k.c.d.e"}]},
         "direct encryption"),
        ({"flag": "U", "files": [jwe_file(), jwe_file()]}, "exactly one file"),
        ({"passcodeAttempts": 0, "flag": "P", "passcode": "x"}, "at least 1"),
    ],
    ids=["flag-order", "u-with-p", "p-without-passcode", "passcode-without-p", "past-exp",
         "label", "no-files", "content-type", "not-jwe", "jwe-with-key", "u-two-files",
         "zero-attempts"],
)
def test_bad_create_requests_are_refused_with_400(
    relay: Relay, fields: dict[str, object], message: str
) -> None:
    fields.setdefault("files", [jwe_file()])
    answer = relay.signed(ALICE, "POST", LINKS, fields)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert "my labs" not in answer.text  # a refusal never quotes the request back


def test_only_allowed_patients_create_links(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    with running_relay(store, tmp_path, open_registration=False,
                       allowed_patients=frozenset({ALICE.did})) as relay:
        refused = relay.signed(MALLORY, "POST", LINKS, {"files": [jwe_file()]})
        assert refused.status_code == 403
        assert relay.create(ALICE)["url"].startswith(relay.url + "m/")
    store.close()


def test_limits_on_upload_size_links_per_patient_and_request_rate(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    limits = {"max_upload_bytes": 2000, "max_links_per_patient": 2,
              "requests_per_second": 1, "burst": 8}
    with running_relay(store, tmp_path, limits=limits) as relay:
        big = relay.signed(ALICE, "POST", LINKS, {"files": [jwe_file(b"x" * 3000)]})
        assert big.status_code == 413
        relay.create(ALICE)
        relay.create(ALICE)
        third = relay.signed(ALICE, "POST", LINKS, {"files": [jwe_file()]})
        assert third.status_code == 403 and "2 links" in third.json()["error"]
        answers = [relay.client.get(relay.url + "m/x") for _ in range(6)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and int(limited[0].headers["retry-after"]) >= 1
    store.close()


def test_passcode_checks_beyond_the_hash_pool_get_429(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    limits = {"hash_workers": 0, "requests_per_second": 1000, "burst": 1000}
    with running_relay(store, tmp_path, limits=limits) as relay:
        link = relay.create(ALICE, flag="P", passcode="pw", passcodeAttempts=3)
        busy = relay.manifest(link["url"], passcode="pw")
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        # Refused before the budget was touched.
        assert relay.signed(ALICE, "GET", f"{LINKS}/{link['id']}").json()[
            "remainingAttempts"] == 3
    store.close()
