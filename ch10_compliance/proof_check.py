"""A proof checked by a third party: no database, only the public key.

Chapter 10, "Audit logging". What `audit prove` prints is everything an
auditor, a customer or a court needs to check that an entry is in the
log the operator signed: the entry, its position, the sibling hashes up
to the root, and the signed checkpoint of that root. Checking it needs
this module and the log's public key, obtained beforehand and out of
band (a key shipped inside the proof proves only that someone signed
it). A consistency proof between two checkpoints shows that the newer
log only appended to the older one: no entry was rewritten in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)

from ch10_compliance.checkpoints import CheckpointError, parse_checkpoint
from ch10_compliance.merkle import (
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


@dataclass(frozen=True)
class ProofVerdict:
    ok: bool
    message: str


def hashes(values: object) -> list[bytes]:
    if not isinstance(values, list):
        raise ValueError("a proof's path is a list of hex hashes")
    return [bytes.fromhex(str(v)) for v in values]


def check_proof(proof: Mapping[str, object],
                public_key: Ed25519PublicKey) -> ProofVerdict:
    """An inclusion or a consistency proof, as `audit prove` and
    `audit consistency` print them."""
    kind = proof.get("type")
    try:
        if kind == "audit.inclusion_proof":
            return check_inclusion(proof, public_key)
        if kind == "audit.consistency_proof":
            return check_consistency(proof, public_key)
    except CheckpointError as error:
        return ProofVerdict(False, str(error))
    except (KeyError, TypeError, ValueError) as error:
        return ProofVerdict(False, f"malformed proof: {error}")
    return ProofVerdict(False, f"unknown proof type {kind!r}")


def check_inclusion(proof: Mapping[str, object],
                    public_key: Ed25519PublicKey) -> ProofVerdict:
    checkpoint = parse_checkpoint(str(proof["checkpoint"]), public_key)
    index, size = int(str(proof["leaf_index"])), int(str(proof["tree_size"]))
    if size != checkpoint.size:
        return ProofVerdict(False, f"the proof is for a tree of {size}, "
                            f"the checkpoint signs {checkpoint.size}")
    entry = proof["entry"]
    if not isinstance(entry, dict):
        raise ValueError("a proof's entry is a JSON object")
    leaf = leaf_hash(rfc8785.dumps(entry))
    if not verify_inclusion(leaf, index, size, hashes(proof["path"]),
                            checkpoint.root):
        return ProofVerdict(False, f"entry {index} is not in the signed "
                            f"tree of {size} entries as given")
    return ProofVerdict(True, f"entry {index} is in the log of "
                        f"{checkpoint.origin} at size {size}, whose "
                        "checkpoint this key signed")


def check_consistency(proof: Mapping[str, object],
                      public_key: Ed25519PublicKey) -> ProofVerdict:
    first = parse_checkpoint(str(proof["first"]), public_key)
    second = parse_checkpoint(str(proof["second"]), public_key)
    if not verify_consistency(first.size, second.size, first.root,
                              second.root, hashes(proof["proof"])):
        return ProofVerdict(False, f"the log of size {second.size} does "
                            f"not extend the log of size {first.size}")
    return ProofVerdict(True, f"the log of size {second.size} only "
                        f"appended to the log of size {first.size}")
