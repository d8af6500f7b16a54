"""VALKYRIE: node keys, commitments, signed traces, checks and proofs.

VALKYRIE uses only ORCHID's public API (the TraceHook protocol, plain types, the public kernels);
it knows nothing of the mesh or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:
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
    from ramnet.valkyrie._sumcheck import (
        MatmulProof,
        check_evaluations,
        prove_matmul,
        verify_rounds,
    )
    from ramnet.valkyrie._trace import (
        BlockDigest,
        Trace,
        decode,
        encode,
        read_trace_bytes,
        write_trace,
    )
    from ramnet.valkyrie._verify import Check, Verdict, verify_trace

# Each name loads its own module on first use: ``ramnet verify`` needs neither the recorder nor
# fraud proofs, and ``ramnet run --trace`` needs no verifier.
_LAZY = {
    "float_range_check": "_checks",
    "freivalds": "_checks",
    "FraudProof": "_fraud",
    "check_fraud_proof": "_fraud",
    "make_fraud_proof": "_fraud",
    "NodeKey": "_keys",
    "bind_payout": "_keys",
    "check_binding": "_keys",
    "load_key": "_keys",
    "load_or_create_key": "_keys",
    "save_key": "_keys",
    "verify_signature": "_keys",
    "Commitment": "_merkle",
    "MerkleTree": "_merkle",
    "TileOpening": "_merkle",
    "commit_matrix": "_merkle",
    "default_tile": "_merkle",
    "merkle_climb": "_merkle",
    "merkle_levels": "_merkle",
    "merkle_path": "_merkle",
    "open_col_segment": "_merkle",
    "open_row_segment": "_merkle",
    "open_tile": "_merkle",
    "row_strip_tile": "_merkle",
    "verify_tile": "_merkle",
    "TraceRecorder": "_recorder",
    "block_digest": "_recorder",
    "MatmulProof": "_sumcheck",
    "check_evaluations": "_sumcheck",
    "prove_matmul": "_sumcheck",
    "verify_rounds": "_sumcheck",
    "BlockDigest": "_trace",
    "Trace": "_trace",
    "decode": "_trace",
    "encode": "_trace",
    "read_trace_bytes": "_trace",
    "write_trace": "_trace",
    "Check": "_verify",
    "Verdict": "_verify",
    "verify_trace": "_verify",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())


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
