"""RFC 6962 Merkle tree proofs over the audit log's leaves: tree heads, inclusion paths,
consistency proofs, and their verification.

The hashing is the envelope's (:mod:`schemas.envelope`): a leaf hashes as SHA-256(0x00 ‖ bytes),
an inner node as SHA-256(0x01 ‖ left ‖ right), and the tree splits ``n`` leaves at the largest
power of two below ``n`` (RFC 6962 §2.1). Proofs are built as RFC 6962 §2.1.1 (``PATH``) and
§2.1.2 (``PROOF``/``SUBPROOF``) define them and verified with the algorithms of RFC 9162
§2.1.3.2 and §2.1.4.2, so any RFC 6962 verifier checks them (``scripts/verify_audit_proof.py``
is one that imports nothing of the trust's).

:class:`Frontier` keeps a growing tree's root in O(log n) space: the roots of the perfect
subtrees its leaves decompose into (one per set bit of the size), so appending a batch never
re-reads the earlier leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas.envelope import leaf_hash as _envelope_leaf  # the envelope's leaf hash, reused
from schemas.envelope import node_hash  # the envelope's inner-node hash, reused

EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
"""The root of the empty tree: SHA-256 of nothing (RFC 6962 §2.1)."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash of ``data``: SHA-256(0x00 ‖ data)."""
    return _envelope_leaf(data)


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes ``leaves`` (RFC 6962 §2.1)."""
    return _root(leaves, 0, len(leaves)) if leaves else EMPTY_ROOT


def _root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = _split(hi - lo)
    return node_hash(_root(leaves, lo, lo + k), _root(leaves, lo + k, hi))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 §2.1.1 over the leaf hashes ``leaves``, bottom up.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    lo, hi, m = 0, len(leaves), index
    siblings: list[tuple[int, int]] = []  # top down
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo, m = lo + k, m - k
    return [_root(leaves, a, b) for a, b in reversed(siblings)]


def consistency_path(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """PROOF(first, D[n]) of RFC 6962 §2.1.2: that the tree of the first ``first`` leaves is a
    prefix of the tree of all ``leaves``. Empty when ``first`` is 0 or ``n``.

    Raises:
        ValueError: ``first`` is not between 0 and n.
    """
    n = len(leaves)
    if not 0 <= first <= n:
        raise ValueError(f"a tree of {first} leaves is not a prefix of a tree of {n}")
    if first in (0, n):
        return []
    out: list[bytes] = []
    lo, hi, m, whole = 0, n, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append(_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            out.append(_root(leaves, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append(_root(leaves, lo, hi))
    out.reverse()  # SUBPROOF appends on the way back up: deepest first
    return out


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root ``path`` leads to from leaf hash ``leaf`` at ``index`` of ``size`` leaves
    (RFC 9162 §2.1.3.2); None when the path has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """Whether ``path`` proves the tree of ``first`` leaves with ``first_root`` is a prefix of
    the tree of ``second`` leaves with ``second_root`` (RFC 9162 §2.1.4.2)."""
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not path  # the empty tree is a prefix of every tree
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # a power of two: the first tree is a subtree of the second
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


@dataclass
class Frontier:
    """A growing tree's right edge: the roots of its perfect subtrees, largest first (one per
    set bit of ``size``). Enough to append leaves and know the root without the earlier ones."""

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.nodes) != self.size.bit_count():
            raise ValueError(f"a tree of {self.size} leaves has {self.size.bit_count()} subtrees")

    def append(self, leaf: bytes) -> None:
        """Add the leaf hash ``leaf`` at index ``size``."""
        self.nodes.append(leaf)
        merged, self.size = self.size, self.size + 1
        while merged & 1:  # equal-height subtrees on the right edge merge
            right = self.nodes.pop()
            self.nodes[-1] = node_hash(self.nodes[-1], right)
            merged >>= 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of every leaf appended so far."""
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            r = node_hash(left, r)
        return r
