#!/usr/bin/env python3
"""Check a tiptrust audit-log proof or export on your own: imports nothing of the trust's code.

Only the Python standard library (hashlib, json) and, to check the trust's signature on a
checkpoint, the ``cryptography`` package. A source or an auditor runs it on what
``tiptrust audit proof`` or ``tiptrust audit export`` printed:

    verify_audit_proof.py PROOF.json [--root HEX] [--public-key trust-release.pub.pem]
    verify_audit_proof.py PROOF.json --from-root HEX      # a consistency proof from a head you kept
    verify_audit_proof.py --export audit.jsonl [--public-key PEM]

- An **inclusion** proof: the entry's leaf hash SHA-256(0x00 ‖ entry bytes) and its audit path
  lead to the root (RFC 9162 §2.1.3.2); with ``--root``, that root is the one you trust.
- A **consistency** proof: the tree of ``from_size`` entries (root ``from_root``) is a prefix of
  the tree of ``to_size`` entries (``to_root``) (RFC 9162 §2.1.4.2): nothing the log held at the
  first checkpoint was changed, removed or reordered later. ``--from-root`` / ``--to-root``
  name roots you kept.
- An **export**: every entry's hash chain and the Merkle root recomputed and compared with the
  final checkpoint.
- With ``--public-key`` (the trust's release key, `tiptrust keys export-release`), every
  checkpoint in the proof or export must carry a valid Ed25519 signature by that key over
  ``"tiptrust/audit-checkpoint/v1\\x00"`` ‖ canonical JSON of its head.

Prints a JSON verdict; exits 0 when everything checks, 1 when something does not, 2 on misuse.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

CHECKPOINT_CONTEXT = b"tiptrust/audit-checkpoint/v1\x00"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def root_from_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root the audit path leads to, or None if its shape is wrong."""
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


def consistent(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether ``path`` proves the first tree a prefix of the second."""
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not path
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    proof = list(path)
    if first & (first - 1) == 0:
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


def merkle_root(leaves: list[bytes]) -> bytes:
    """MTH (RFC 6962 §2.1) of the leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def checkpoint_signature_problem(checkpoint: dict[str, Any], public_key_pem: bytes) -> str | None:
    """None when ``checkpoint`` is signed by the Ed25519 key in ``public_key_pem``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    public = load_pem_public_key(public_key_pem)
    if not isinstance(public, Ed25519PublicKey):
        return "the public key is not an Ed25519 key"
    if not checkpoint.get("signature"):
        return f"checkpoint {checkpoint.get('tree_size')} is not signed"
    if checkpoint.get("key_id") != key_id(public):
        return f"checkpoint {checkpoint.get('tree_size')} is signed by another key"
    head = {
        k: checkpoint[k] for k in ("log", "tree_size", "root", "chain", "issued_at_ms", "key_id")
    }
    try:
        public.verify(
            base64.b64decode(checkpoint["signature"]), CHECKPOINT_CONTEXT + canonical(head)
        )
    except InvalidSignature:
        return f"checkpoint {checkpoint.get('tree_size')}'s signature does not verify"
    return None


def _hex(value: Any, what: str, problems: list[str]) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != 32:
        problems.append(f"{what} is not a 32-byte hex hash")
    return raw


def check_inclusion(proof: dict[str, Any], root: str | None) -> list[str]:
    problems: list[str] = []
    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(index, int) or not isinstance(size, int):
        return ["leaf_index and tree_size must be integers"]
    claimed = _hex(proof.get("root"), "root", problems)
    path = [_hex(p, "a path hash", problems) for p in proof.get("path", [])]
    entry = proof.get("entry")
    if not isinstance(entry, str):
        return [*problems, "the proof carries no entry"]
    if problems:
        return problems
    leaf = leaf_hash(entry.encode())
    if proof.get("leaf_hash") not in (None, leaf.hex()):
        problems.append("leaf_hash is not SHA-256(0x00 || entry)")
    if json.loads(entry).get("leaf_index") != index:
        problems.append("the entry says it is another entry")
    if root_from_inclusion(leaf, index, size, path) != claimed:
        problems.append("the path does not lead from the entry to the root")
    if root is not None and root.lower() != claimed.hex():
        problems.append("the proof's root is not the root you gave")
    cp = proof.get("checkpoint")
    if isinstance(cp, dict) and (cp.get("root") != claimed.hex() or cp.get("tree_size") != size):
        problems.append("the checkpoint is not the head the proof is for")
    return problems


def check_consistency(
    proof: dict[str, Any], from_root: str | None, to_root: str | None
) -> list[str]:
    problems: list[str] = []
    first, second = proof.get("from_size"), proof.get("to_size")
    if not isinstance(first, int) or not isinstance(second, int):
        return ["from_size and to_size must be integers"]
    old = _hex(proof.get("from_root"), "from_root", problems)
    new = _hex(proof.get("to_root"), "to_root", problems)
    path = [_hex(p, "a path hash", problems) for p in proof.get("path", [])]
    if problems:
        return problems
    if not consistent(first, second, old, new, path):
        problems.append("the path does not prove the first tree a prefix of the second")
    if from_root is not None and from_root.lower() != old.hex():
        problems.append("from_root is not the root you gave")
    if to_root is not None and to_root.lower() != new.hex():
        problems.append("to_root is not the root you gave")
    for name, size, r in (("from_checkpoint", first, old), ("to_checkpoint", second, new)):
        cp = proof.get(name)
        if isinstance(cp, dict) and (cp.get("root") != r.hex() or cp.get("tree_size") != size):
            problems.append(f"{name} is not the head the proof is for")
    return problems


def check_export(lines: list[bytes]) -> tuple[list[str], dict[str, Any] | None]:
    """Recompute the chain and the root of an export; its last line is the checkpoint."""
    if not lines:
        return ["the export is empty"], None
    try:
        checkpoint = json.loads(lines[-1])["checkpoint"]
    except (ValueError, KeyError, TypeError):
        return ['the last line is not {"checkpoint": …}'], None
    problems: list[str] = []
    chain, leaves = bytes(32), []
    for i, entry in enumerate(lines[:-1]):
        try:
            said = json.loads(entry).get("leaf_index")
        except (ValueError, AttributeError):
            said = None
        if said != i:
            problems.append(f"line {i + 1} is not entry {i}")
        chain = sha256(chain + entry)
        leaves.append(leaf_hash(entry))
    if checkpoint.get("tree_size") != len(leaves):
        problems.append(
            f"the checkpoint covers {checkpoint.get('tree_size')} entries, not {len(leaves)}"
        )
    if checkpoint.get("root") != merkle_root(leaves).hex():
        problems.append("the entries do not make the checkpoint's root")
    if checkpoint.get("chain") != chain.hex():
        problems.append("the entries do not make the checkpoint's chain head")
    return problems, checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "proof", nargs="?", type=Path, help="a proof printed by `tiptrust audit proof`"
    )
    parser.add_argument("--export", type=Path, help="a log written by `tiptrust audit export`")
    parser.add_argument("--root", help="the root you trust (inclusion proof)")
    parser.add_argument(
        "--from-root", help="the root you kept of the first checkpoint (consistency)"
    )
    parser.add_argument(
        "--to-root", help="the root you trust of the second checkpoint (consistency)"
    )
    parser.add_argument("--public-key", type=Path, help="the trust's release public key (PEM)")
    args = parser.parse_args(argv)
    if (args.proof is None) == (args.export is None):
        parser.error("give a proof file or --export FILE")
    checkpoints: list[dict[str, Any]] = []
    if args.export is not None:
        raw = args.export.read_bytes()
        problems, checkpoint = check_export([line for line in raw.split(b"\n") if line])
        checkpoints = [checkpoint] if checkpoint else []
        kind = "export"
    else:
        proof = json.loads(args.proof.read_text(encoding="utf-8"))
        kind = proof.get("type")
        if kind == "inclusion":
            problems = check_inclusion(proof, args.root)
            checkpoints = [c for c in [proof.get("checkpoint")] if isinstance(c, dict)]
        elif kind == "consistency":
            problems = check_consistency(proof, args.from_root, args.to_root)
            checkpoints = [
                c
                for c in (proof.get("from_checkpoint"), proof.get("to_checkpoint"))
                if isinstance(c, dict)
            ]
        else:
            parser.error(f"not an audit proof (type {kind!r})")
    if args.public_key is not None:
        pem = args.public_key.read_bytes()
        if not checkpoints:
            problems.append("no checkpoint to check the signature of")
        for cp in checkpoints:
            problem = checkpoint_signature_problem(cp, pem)
            if problem is not None:
                problems.append(problem)
    print(json.dumps({"verified": not problems, "kind": kind, "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
