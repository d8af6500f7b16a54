"""VALKYRIE: node keys, commitments, signed traces, checks and proofs.

VALKYRIE builds on ORCHID (the TraceHook protocol, plain types, the kernels) and its own prime
field (``ramnet.valkyrie.field``); it knows nothing of the mesh or the CLI.

The public API is ``__all__`` (the keys of ``_PUBLIC``): node keys and payout bindings, recording
and reading signed traces, verifying them (``verify_trace``), Merkle commitments to matrices, the
sum-check proof, Freivalds and the float range check, and fraud proofs. The Merkle tree's levels,
paths and tile openings, the proof's round checks and the field are internal: other RAMNET
packages import them from their modules. Each name loads its module on first use: ``ramnet
verify`` needs neither the recorder nor fraud proofs, and ``ramnet run --trace`` needs no verifier.
"""

from __future__ import annotations

from ramnet._lazy import lazy_getattr

_PUBLIC = {
    "BlockDigest": "_trace",
    "Check": "_verify",
    "Commitment": "_merkle",
    "FraudProof": "_fraud",
    "MatmulProof": "_sumcheck",
    "NodeKey": "_keys",
    "Trace": "_trace",
    "TraceRecorder": "_recorder",
    "Verdict": "_verify",
    "bind_payout": "_keys",
    "block_digest": "_recorder",
    "check_binding": "_keys",
    "check_fraud_proof": "_fraud",
    "commit_matrix": "_merkle",
    "decode": "_trace",
    "encode": "_trace",
    "float_range_check": "_checks",
    "freivalds": "_checks",
    "load_key": "_keys",
    "load_or_create_key": "_keys",
    "make_fraud_proof": "_fraud",
    "prove_matmul": "_sumcheck",
    "read_trace_bytes": "_trace",
    "save_key": "_keys",
    "verify_signature": "_keys",
    "verify_trace": "_verify",
    "write_trace": "_trace",
}

__all__ = list(_PUBLIC)

__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
