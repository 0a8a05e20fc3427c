"""RFC 9162 §2.1 Merkle tree: roots, audit paths and their verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from healthwallet.ledger import merkle


def naive_mth(entries: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:])).digest()


def naive_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 9162 §2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, entries[:k]), naive_mth(entries[k:])]
    return [*naive_path(m - k, entries[k:]), naive_mth(entries[:k])]


def entries_of(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


# Test vectors of the Certificate Transparency reference implementation (RFC 6962
# tree, same hashing as RFC 9162 §2.1): the first 8 entries and the root of each prefix.
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashing_uses_rfc9162_prefixes() -> None:
    left, right = b"\xaa" * 32, b"\xbb" * 32
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.empty_root()


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_reference_vectors(size: int) -> None:
    assert merkle.root(CT_ENTRIES[:size]).hex() == CT_ROOTS[size - 1]


def test_pymerkle_oracle_is_configured_as_rfc9162() -> None:
    # pymerkle only matches RFC 9162 with sha256 and its "security" prefixes switched on.
    tree = InmemoryTree(algorithm="sha256")
    assert tree.security and tree.leaf_prefix == b"\x00" and tree.node_prefix == b"\x01"
    for entry in CT_ENTRIES:
        tree.append_entry(entry)
    assert tree.get_root().hex() == CT_ROOTS[-1]


def test_every_size_1_to_300_matches_pymerkle_and_the_rfc_recursion() -> None:
    entries = entries_of(300)
    oracle = InmemoryTree(algorithm="sha256")
    for size in range(1, 301):
        oracle.append_entry(entries[size - 1])
        batch = merkle.MerkleBatch(entries[:size])
        assert batch.root == oracle.get_root() == naive_mth(entries[:size]), size
        blobs = batch.audit_path_blobs()
        for index in range(size):
            path = batch.audit_path(index)
            # pymerkle's path starts with the leaf itself; the siblings follow, leaf side first.
            assert path == oracle.prove_inclusion(index + 1, size).path[1:], (size, index)
            assert blobs[index] == b"".join(path)
            assert merkle.verify_inclusion(batch.leaf(index), index, size, path, batch.root)
        if size <= 64:
            assert all(batch.audit_path(i) == naive_path(i, entries[:size]) for i in range(size)), (
                size
            )


def test_module_functions_agree_with_batch() -> None:
    entries = entries_of(13)
    assert merkle.root(entries) == naive_mth(entries)
    assert merkle.inclusion_proof(entries, 12) == naive_path(12, entries)
    assert merkle.split_path(b"".join(naive_path(5, entries))) == naive_path(5, entries)
    with pytest.raises(ValueError):
        merkle.split_path(b"\x00" * 33)
    with pytest.raises(IndexError):
        merkle.MerkleBatch(entries).audit_path(13)
    assert merkle.MerkleBatch.from_leaf_hashes(
        [merkle.leaf_hash(e) for e in entries]
    ).root == merkle.root(entries)


def test_verify_rejects_malformed_proofs() -> None:
    entries = entries_of(7)
    batch = merkle.MerkleBatch(entries)
    leaf, path, root = batch.leaf(6), batch.audit_path(6), batch.root
    assert merkle.verify_inclusion(leaf, 6, 7, path, root)
    assert not merkle.verify_inclusion(leaf, 7, 7, path, root)  # index outside the tree
    assert not merkle.verify_inclusion(leaf, -1, 7, path, root)
    assert not merkle.verify_inclusion(leaf, 6, 7, [*path, path[0]], root)  # path too long
    assert not merkle.verify_inclusion(leaf, 6, 7, path[:-1], root)  # path too short
    assert not merkle.verify_inclusion(leaf, 6, 7, [path[0][:31], *path[1:]], root)
    assert not merkle.verify_inclusion(leaf[:31], 6, 7, path, root)
    # An interior node is not a leaf: the 0x00/0x01 prefixes stop second preimages.
    assert not merkle.verify_inclusion(batch.audit_path(0)[1], 1, 4, [], root)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=200),
    st.data(),
)
def test_every_proof_verifies_and_any_change_breaks_it(
    entries: list[bytes], data: st.DataObject
) -> None:
    batch = merkle.MerkleBatch(entries)
    size = len(entries)
    index = data.draw(st.integers(0, size - 1))
    leaf, path, root = merkle.leaf_hash(entries[index]), batch.audit_path(index), batch.root
    assert merkle.verify_inclusion(leaf, index, size, path, root)
    assert merkle.root_from_inclusion_proof(leaf, index, size, path) == root

    assert not merkle.verify_inclusion(
        merkle.leaf_hash(entries[index] + b"!"), index, size, path, root
    )
    other_root = bytearray(root)
    other_root[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    assert not merkle.verify_inclusion(leaf, index, size, path, bytes(other_root))
    if path:
        spot = data.draw(st.integers(0, len(path) - 1))
        changed = [bytearray(h) for h in path]
        changed[spot][data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
        assert not merkle.verify_inclusion(leaf, index, size, [bytes(h) for h in changed], root)
    other_index = data.draw(st.integers(0, size - 1))
    if entries[other_index] != entries[index] and other_index != index:
        assert not merkle.verify_inclusion(leaf, other_index, size, path, root)


def test_paths_read_back_from_stored_nodes_match_for_every_size() -> None:
    """What the anchor store keeps (leaves + inner nodes) answers every leaf's audit path."""
    for size in range(1, 130):
        entries = [hashlib.sha256(bytes([size % 256, i % 256, i // 256])).digest() for i in range(size)]
        batch = merkle.MerkleBatch(entries)
        nodes = {(level, index): node for level, index, node in batch.inner_nodes()}
        assert len(nodes) == sum(merkle.level_sizes(size)[1:])

        def node_at(level: int, index: int) -> bytes:
            return merkle.leaf_hash(entries[index]) if level == 0 else nodes[(level, index)]

        for index in range(size):
            assert merkle.audit_path_from(index, size, node_at) == batch.audit_path(index)
