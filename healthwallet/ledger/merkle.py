"""Merkle tree hashing, inclusion proofs and their verification (RFC 9162 §2.1).

Pure functions over bytes: no I/O, no clock, no randomness. Entries are the
32-byte record commitments; the tree is the one RFC 9162 §2.1.1 defines:

    MTH({})      = SHA-256()
    MTH({d(0)})  = SHA-256(0x00 || d(0))
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of 2 < n

An audit path lists sibling hashes from the leaf upwards (RFC 9162 §2.1.3.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import add

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
# A tree of up to 2**64 leaves has paths of at most 64 hashes (RFC 9162 §2.1.3.2 caps sizes).
MAX_PATH_LENGTH = 64

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """The leaf hash of one entry: SHA-256(0x00 || entry) (RFC 9162 §2.1.1)."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """The root of a tree with no leaves: SHA-256 of the empty string (RFC 9162 §2.1.1)."""
    return _sha256(b"").digest()


def _leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    # Copying a pre-seeded hash state is cheaper than concatenating the prefix each time.
    seeded = _sha256(LEAF_PREFIX)
    copy = seeded.copy
    out: list[bytes] = []
    append = out.append
    for entry in entries:
        state = copy()
        state.update(entry)
        append(state.digest())
    return out


def _build_levels(leaves: list[bytes]) -> list[list[bytes]]:
    # Pairing bottom-up and carrying an unpaired last node up one level unchanged gives
    # exactly the RFC 9162 §2.1.1 split (left subtree = largest power of two < n).
    levels = [leaves]
    level = leaves
    sha = _sha256
    prefix = NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)  # zip(pairs, pairs) walks (left, right) without copying the level
        parents = [
            sha(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            parents.append(level[-1])
        levels.append(parents)
        level = parents
    return levels


class MerkleBatch:
    """A whole tree over one batch of entries: its root and every inclusion proof."""

    __slots__ = ("_levels",)

    def __init__(self, entries: Sequence[bytes]) -> None:
        self._levels = _build_levels(_leaf_hashes(entries)) if entries else []

    @classmethod
    def from_leaf_hashes(cls, leaves: Sequence[bytes]) -> MerkleBatch:
        """A batch built from already hashed leaves."""
        batch = cls(())
        batch._levels = _build_levels(list(leaves)) if leaves else []
        return batch

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) if self._levels else 0

    @property
    def root(self) -> bytes:
        """The Merkle tree hash of the batch (RFC 9162 §2.1.1)."""
        return self._levels[-1][0] if self._levels else empty_root()

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index`` (0-based)."""
        self._check_index(index)
        return self._levels[0][index]

    def audit_path(self, index: int) -> list[bytes]:
        """Audit path of leaf ``index``: sibling hashes, leaf side first (RFC 9162 §2.1.3.1)."""
        self._check_index(index)
        path = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        return path

    def inner_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """Every node above the leaves as (level, index, hash), level 1 being the leaves' parents.

        With the leaves, these are all a store needs to answer any inclusion proof later
        (see :func:`audit_path_from`), without writing every leaf's path out.
        """
        for level_no, level in enumerate(self._levels[1:], start=1):
            for index, node in enumerate(level):
                yield level_no, index, node

    def audit_path_blobs(self) -> list[bytes]:
        """Every leaf's audit path as concatenated 32-byte hashes, in leaf order."""
        # Leaves under one node share that node's path; build the paths from the root down
        # so each level is one bulk concatenation instead of a walk per leaf.
        if not self._levels:
            return []
        paths = [b""]
        for level in reversed(self._levels[:-1]):
            count = len(level)
            paired = count & ~1
            above = paths[: paired // 2]
            below: list[bytes] = [b""] * count
            below[0:paired:2] = list(map(add, level[1:paired:2], above))
            below[1:paired:2] = list(map(add, level[0:paired:2], above))
            if count & 1:
                below[-1] = paths[-1]  # an unpaired node has no sibling at this level
            paths = below
        return paths

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError("leaf index out of range")


def root(entries: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``entries`` (RFC 9162 §2.1.1)."""
    return MerkleBatch(entries).root


def inclusion_proof(entries: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path for ``entries[index]`` (RFC 9162 §2.1.3.1)."""
    return MerkleBatch(entries).audit_path(index)


def level_sizes(size: int) -> list[int]:
    """Number of nodes on each level of a tree of ``size`` leaves, leaves first."""
    sizes = [size]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)  # an unpaired node is carried up unchanged
    return sizes


def audit_path_from(index: int, size: int, node_at: Callable[[int, int], bytes]) -> list[bytes]:
    """Audit path of leaf ``index`` (RFC 9162 §2.1.3.1), reading nodes through ``node_at``.

    ``node_at(level, position)`` returns a stored node (level 0: the leaf hashes), as laid
    out by :class:`MerkleBatch`: each level holds the hashes of adjacent pairs below it,
    an unpaired last node carried up unchanged.
    """
    if not 0 <= index < size:
        raise IndexError("leaf index out of range")
    path = []
    position = index
    for level, count in enumerate(level_sizes(size)[:-1]):
        sibling = position ^ 1
        if sibling < count:
            path.append(node_at(level, sibling))
        position >>= 1
    return path


def split_path(blob: bytes) -> list[bytes]:
    """Split concatenated 32-byte hashes into a list; ValueError if the length is wrong."""
    if len(blob) % HASH_SIZE:
        raise ValueError("an audit path is a whole number of 32-byte hashes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to; ValueError if the proof is malformed.

    Follows RFC 9162 §2.1.3.2 steps 1-4 (the caller compares the result with the root).
    """
    if not 0 <= index < size:
        raise ValueError("leaf index is not inside the tree")
    if len(leaf) != HASH_SIZE or any(len(node) != HASH_SIZE for node in path):
        raise ValueError("hashes must be 32 bytes")
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError("audit path is too long")
    fn, sn = index, size - 1
    result = leaf
    for sibling in path:
        if sn == 0:
            raise ValueError("audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            # Skip levels where this node was carried up without a sibling.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("audit path is shorter than the tree is deep")
    return result


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """True when ``path`` proves leaf hash ``leaf`` sits at ``index`` of the tree ``expected_root``.

    RFC 9162 §2.1.3.2, including step 5 (sn must reach 0 and the roots must match).
    """
    try:
        computed = root_from_inclusion_proof(leaf, index, size, path)
    except ValueError:
        return False
    return computed == expected_root
