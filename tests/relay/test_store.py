"""The link store's contract, run against SQLite and a real PostgreSQL server alike."""

from __future__ import annotations

import threading

from relay_fixtures import (  # noqa: F401 (fixtures)
    postgres_dsn_fixture,
    postgres_server_fixture,
    store_fixture,
)

from healthwallet.relay.grantstore import GrantStore, RelayedGrant
from healthwallet.relay.store import CHUNK_BYTES, Link, NewFile, SqlStore

OWNER = "did:key:z6MkOwner"
OTHER = "did:key:z6MkOther"


def make_link(link_id: str = "L1", owner: str = OWNER, attempts: int | None = None,
              max_uses: int | None = None, exp: int | None = None, flag: str = "") -> Link:
    return Link(id=link_id, owner=owner, flag=flag, exp=exp,
                passcode_hash="h" if attempts is not None else None, attempts_left=attempts,
                max_uses=max_uses, uses=0, single_use_locations=True, revoked=False,
                created=100, updated=100)


FILES = [NewFile("application/fhir+json", b"a.b.c.d.e"), NewFile("application/fhir+json", b"x")]


def test_created_link_reads_back_with_its_files(store: SqlStore) -> None:
    assert store.create_link(make_link(), FILES, ["F1", "F2"], max_links=5)
    link = store.get_link("L1")
    assert link is not None and link.owner == OWNER and link.usable(now=200)
    files = store.files("L1")
    assert [f.id for f in files] == ["F1", "F2"]
    assert b"".join(store.chunks("F1")) == b"a.b.c.d.e"
    assert store.get_link("nope") is None


def test_large_ciphertext_is_stored_and_read_in_chunks(store: SqlStore) -> None:
    big = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)
    store.create_link(make_link(), [NewFile("application/fhir+json", big)], ["F"], max_links=5)
    pieces = list(store.chunks("F"))
    assert len(pieces) == 3 and all(len(p) <= CHUNK_BYTES for p in pieces)
    assert b"".join(pieces) == big and store.files("L1")[0].size == len(big)


def test_links_per_owner_limit_counts_unrevoked_links(store: SqlStore) -> None:
    assert store.create_link(make_link("A"), [], [], max_links=2)
    assert store.create_link(make_link("B"), [], [], max_links=2)
    assert not store.create_link(make_link("C"), [], [], max_links=2)
    assert store.create_link(make_link("D", owner=OTHER), [], [], max_links=2)
    assert store.revoke_link("A", OWNER, now=150)
    assert store.create_link(make_link("C"), [], [], max_links=2)
    assert [link.id for link in store.list_links(OWNER)] == ["A", "B", "C"]


def test_only_the_owner_revokes_and_revocation_drops_ciphertext(store: SqlStore) -> None:
    store.create_link(make_link(), FILES, ["F1", "F2"], max_links=5)
    store.add_location("T", "F1", "L1", expires=1000, single_use=False)
    assert not store.revoke_link("L1", OTHER, now=150)
    assert store.revoke_link("L1", OWNER, now=150)
    link = store.get_link("L1")
    assert link is not None and link.revoked and not link.usable(now=150)
    assert store.files("L1") == [] and list(store.chunks("F1")) == []
    assert store.take_location("T", now=200) is None


def test_replace_files_swaps_ciphertext_for_the_owner_only(store: SqlStore) -> None:
    store.create_link(make_link(flag="L"), FILES, ["F1", "F2"], max_links=5)
    new = [NewFile("application/smart-health-card", b"n.e.w.j.w")]
    assert not store.replace_files("L1", OTHER, new, ["G1"], now=300)
    assert store.replace_files("L1", OWNER, new, ["G1"], now=300)
    assert [(f.id, f.content_type, f.updated) for f in store.files("L1")] == [
        ("G1", "application/smart-health-card", 300)]
    assert list(store.chunks("F1")) == []


def test_attempt_budget_runs_out_and_refunds(store: SqlStore) -> None:
    store.create_link(make_link(attempts=2), [], [], max_links=5)
    assert store.take_attempt("L1") == 1
    store.refund_attempt("L1")
    assert store.take_attempt("L1") == 1
    assert store.take_attempt("L1") == 0
    assert store.take_attempt("L1") is None
    link = store.get_link("L1")
    assert link is not None and not link.usable(now=150)


def test_attempt_budget_holds_under_concurrent_takers(store: SqlStore) -> None:
    store.create_link(make_link(attempts=7), [], [], max_links=5)
    granted: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            left = store.take_attempt("L1")
            if left is not None:
                with lock:
                    granted.append(left)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(granted) == list(range(7))


def test_use_limit(store: SqlStore) -> None:
    store.create_link(make_link(max_uses=2), [], [], max_links=5)
    assert store.take_use("L1", now=150) and store.take_use("L1", now=150)
    assert not store.take_use("L1", now=150)
    link = store.get_link("L1")
    assert link is not None and link.uses == 2 and not link.usable(now=150)


def test_revoked_or_expired_link_is_not_used(store: SqlStore) -> None:
    assert not make_link(exp=200).usable(now=200)
    assert make_link(exp=200).usable(now=199)
    store.create_link(make_link(exp=200), [], [], max_links=5)
    assert not store.take_use("L1", now=200)
    assert store.take_use("L1", now=199)
    store.revoke_link("L1", OWNER, now=199)
    assert not store.take_use("L1", now=199)


def test_single_use_location_is_consumed_and_tokens_expire(store: SqlStore) -> None:
    store.create_link(make_link(), FILES, ["F1", "F2"], max_links=5)
    store.add_location("ONCE", "F1", "L1", expires=500, single_use=True)
    store.add_location("MANY", "F2", "L1", expires=500, single_use=False)
    assert store.take_location("ONCE", now=200) == ("F1", "L1")
    assert store.take_location("ONCE", now=200) is None
    assert store.take_location("MANY", now=200) == ("F2", "L1")
    assert store.take_location("MANY", now=499) == ("F2", "L1")
    assert store.take_location("MANY", now=500) is None


def test_access_log_is_kept_per_link(store: SqlStore) -> None:
    store.create_link(make_link(), [], [], max_links=5)
    store.log_access("L1", 110, "Dr. Who", "ok")
    store.log_access("L1", 120, "Eve", "wrong-passcode")
    assert [(e.at, e.recipient, e.outcome) for e in store.access_log("L1")] == [
        (110, "Dr. Who", "ok"), (120, "Eve", "wrong-passcode")]
    assert store.access_log("L2") == []


def test_nonce_is_accepted_once_until_it_expires(store: SqlStore) -> None:
    assert not store.nonce_seen(OWNER, "n1", expires=400, now=100)
    assert store.nonce_seen(OWNER, "n1", expires=400, now=300)
    assert not store.nonce_seen(OTHER, "n1", expires=400, now=300)
    assert not store.nonce_seen(OWNER, "n1", expires=900, now=401)  # forgotten once expired


def test_concurrent_writers_are_serialised_not_refused(store: SqlStore) -> None:
    """Creating, updating and revoking links and relaying grants at once from several threads never fails with a
    lock error (a relay would answer 500): each write transaction waits its turn."""
    failures: list[str] = []
    lock = threading.Lock()
    grants = GrantStore(store)

    def work(worker: int) -> None:
        for n in range(15):
            link_id = f"W{worker}-{n}"
            owner = f"did:key:z6MkW{worker}"
            try:
                ids = [f"{link_id}a", f"{link_id}b"]
                assert store.create_link(make_link(link_id, owner), FILES, ids, 100)
                grant = RelayedGrant(link_id, owner, OTHER, 10**10, "{}", 100)
                assert grants.add(grant, b"grant", 100)
                assert store.replace_files(link_id, owner, FILES[:1], [f"{link_id}c"], 200)
                assert store.revoke_link(link_id, owner, 300)
            except Exception as exc:  # any failure is the finding
                with lock:
                    failures.append(type(exc).__name__)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
