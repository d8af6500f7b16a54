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

from typing import TYPE_CHECKING

from ramnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the names of _PUBLIC, re-exported for type checkers
    from ramnet.valkyrie._checks import float_range_check as float_range_check
    from ramnet.valkyrie._checks import freivalds as freivalds
    from ramnet.valkyrie._fraud import FraudProof as FraudProof
    from ramnet.valkyrie._fraud import check_fraud_proof as check_fraud_proof
    from ramnet.valkyrie._fraud import make_fraud_proof as make_fraud_proof
    from ramnet.valkyrie._keys import NodeKey as NodeKey
    from ramnet.valkyrie._keys import bind_payout as bind_payout
    from ramnet.valkyrie._keys import check_binding as check_binding
    from ramnet.valkyrie._keys import load_key as load_key
    from ramnet.valkyrie._keys import load_or_create_key as load_or_create_key
    from ramnet.valkyrie._keys import save_key as save_key
    from ramnet.valkyrie._keys import verify_signature as verify_signature
    from ramnet.valkyrie._merkle import Commitment as Commitment
    from ramnet.valkyrie._merkle import commit_matrix as commit_matrix
    from ramnet.valkyrie._recorder import TraceRecorder as TraceRecorder
    from ramnet.valkyrie._recorder import block_digest as block_digest
    from ramnet.valkyrie._sumcheck import MatmulProof as MatmulProof
    from ramnet.valkyrie._sumcheck import prove_matmul as prove_matmul
    from ramnet.valkyrie._trace import BlockDigest as BlockDigest
    from ramnet.valkyrie._trace import Trace as Trace
    from ramnet.valkyrie._trace import decode as decode
    from ramnet.valkyrie._trace import encode as encode
    from ramnet.valkyrie._trace import read_trace_bytes as read_trace_bytes
    from ramnet.valkyrie._trace import write_trace as write_trace
    from ramnet.valkyrie._verify import Check as Check
    from ramnet.valkyrie._verify import Verdict as Verdict
    from ramnet.valkyrie._verify import verify_trace as verify_trace

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
