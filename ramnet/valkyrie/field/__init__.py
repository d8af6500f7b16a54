"""VALKYRIE's prime field: p = 2^61 - 1 and F_{p^2} = F_p[i]/(i^2 + 1), defined here once.

- ``_scalar``: the modulus ``P61`` and the pure-Python F_{p^2} arithmetic of the verifier's
  O(log n) work (``fp2_add``, ``fp2_mul``, ... on (re, im) integer pairs).
- ``_sums``: weighted row and column sums of integer matrices mod p (Freivalds, multilinear
  extensions), threaded, exact for every integer dtype.
- ``_vectors``: the F_{p^2} vector kernels of the sum-check prover and verifier.
- ``_binding``: where those kernels run: the C functions of csrc/field.c (compiled into the one
  cffi extension, read from there by name) or the numba kernels of ``_numba``.

Every name below is for VALKYRIE's own modules and the mesh's checks; none is part of
``ramnet.valkyrie``'s public API.
"""

from __future__ import annotations

from ramnet.valkyrie.field._scalar import (
    P61,
    Fp2,
    fp2_add,
    fp2_bytes,
    fp2_inv,
    fp2_mul,
    fp2_neg,
    fp2_scale,
    fp2_sub,
)
from ramnet.valkyrie.field._sums import (
    RowSums,
    field_best_path,
    field_paths,
    weighted_colsums,
    weighted_rowsums,
)
from ramnet.valkyrie.field._vectors import (
    SumcheckTables,
    fp2_dot,
    fp2_eq_table,
    fp2_fold,
    fp2_sumcheck_round,
)

__all__ = [
    "P61",
    "Fp2",
    "RowSums",
    "SumcheckTables",
    "field_best_path",
    "field_paths",
    "fp2_add",
    "fp2_bytes",
    "fp2_dot",
    "fp2_eq_table",
    "fp2_fold",
    "fp2_inv",
    "fp2_mul",
    "fp2_neg",
    "fp2_scale",
    "fp2_sub",
    "fp2_sumcheck_round",
    "weighted_colsums",
    "weighted_rowsums",
]
