"""VALKYRIE: node keys, commitments, signed traces, checks and proofs.

VALKYRIE uses only ORCHID's public API (the TraceHook protocol, plain types, the public kernels);
it knows nothing of the mesh or the CLI.
"""

from __future__ import annotations

from ramnet.valkyrie._checks import float_range_check, freivalds
from ramnet.valkyrie._fraud import FraudProof, check_fraud_proof, make_fraud_proof
from ramnet.valkyrie._keys import (
    NodeKey,
    bind_payout,
    check_binding,
    load_key,
    load_or_create_key,
    save_key,
    verify_signature,
)
from ramnet.valkyrie._merkle import (
    Commitment,
    MerkleTree,
    TileOpening,
    commit_matrix,
    default_tile,
    merkle_climb,
    merkle_levels,
    merkle_path,
    open_col_segment,
    open_row_segment,
    open_tile,
    row_strip_tile,
    verify_tile,
)
from ramnet.valkyrie._recorder import TraceRecorder, block_digest
from ramnet.valkyrie._sumcheck import MatmulProof, check_evaluations, prove_matmul, verify_rounds
from ramnet.valkyrie._trace import BlockDigest, Trace, decode, encode, read_trace_bytes, write_trace
from ramnet.valkyrie._verify import Check, Verdict, verify_trace

__all__ = [
    "BlockDigest",
    "Check",
    "Commitment",
    "FraudProof",
    "MatmulProof",
    "MerkleTree",
    "NodeKey",
    "TileOpening",
    "Trace",
    "TraceRecorder",
    "Verdict",
    "bind_payout",
    "block_digest",
    "check_binding",
    "check_evaluations",
    "check_fraud_proof",
    "commit_matrix",
    "decode",
    "default_tile",
    "encode",
    "float_range_check",
    "freivalds",
    "load_key",
    "load_or_create_key",
    "make_fraud_proof",
    "merkle_climb",
    "merkle_levels",
    "merkle_path",
    "open_col_segment",
    "open_row_segment",
    "open_tile",
    "prove_matmul",
    "read_trace_bytes",
    "row_strip_tile",
    "save_key",
    "verify_rounds",
    "verify_signature",
    "verify_tile",
    "verify_trace",
    "write_trace",
]
