"""The public API, pinned: a change to these lists must be deliberate."""

from __future__ import annotations

import importlib
import inspect

import pytest

import ramnet
import ramnet._errors
import ramnet.orchid

RAMNET_ALL = [
    "BackendUnavailableError",
    "ConfigError",
    "InputFileError",
    "InvalidInputError",
    "KernelError",
    "KeyFileError",
    "NonFiniteInputError",
    "OutputFileError",
    "OverflowRiskError",
    "ProofUnsupportedError",
    "RamnetError",
    "ShapeMismatchError",
    "TraceFormatError",
    "UnsupportedDTypeError",
    "__version__",
    "matmul",
    "verify_trace",
]

ORCHID_ALL = [
    "BACKENDS",
    "Backend",
    "BlockProduct",
    "Grid",
    "JobSpec",
    "SUPPORTED_DTYPES",
    "TraceHook",
    "add",
    "copy",
    "default_grid",
    "default_threads",
    "execute_blocks",
    "freed_memory_kept",
    "hash_paths",
    "keep_freed_memory",
    "kernel_info",
    "load_npy",
    "make_grid",
    "matmul",
    "matmul_many",
    "node_digests",
    "pack_tiles",
    "parallel_map",
    "parse_shape",
    "prepare",
    "random_operands",
    "resolve_backend",
    "result_dtype",
    "run_job",
    "save_npy",
    "scale",
    "spec_for",
    "tile_digests",
    "tile_leaf_sizes",
    "triad",
]


SIDECAR_ALL = [
    "DaemonClient",
    "DaemonRequestError",
    "DaemonServer",
    "DaemonUnavailableError",
    "Proxy",
    "SidecarError",
    "SidecarProtocolError",
    "default_socket_path",
    "parse_daemon_url",
    "serve_daemon",
    "serve_proxy",
]


def test_sidecar_all_pinned() -> None:
    import ramnet.sidecar

    assert sorted(ramnet.sidecar.__all__) == SIDECAR_ALL
    for name in SIDECAR_ALL:
        assert getattr(ramnet.sidecar, name) is not None


def test_ramnet_all_pinned() -> None:
    assert sorted(ramnet.__all__) == RAMNET_ALL
    assert len(set(ramnet.__all__)) == len(ramnet.__all__)


def test_orchid_all_pinned() -> None:
    assert sorted(ramnet.orchid.__all__) == ORCHID_ALL
    assert len(set(ramnet.orchid.__all__)) == len(ramnet.orchid.__all__)


@pytest.mark.parametrize("name", RAMNET_ALL)
def test_ramnet_names_resolve(name: str) -> None:
    assert getattr(ramnet, name) is not None


@pytest.mark.parametrize("name", ORCHID_ALL)
def test_orchid_names_resolve(name: str) -> None:
    assert getattr(ramnet.orchid, name) is not None


def test_star_import() -> None:
    namespace: dict[str, object] = {}
    exec("from ramnet import *", namespace)
    assert set(RAMNET_ALL) <= set(namespace)
    namespace = {}
    exec("from ramnet.orchid import *", namespace)
    assert set(ORCHID_ALL) <= set(namespace)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        _ = ramnet.no_such_thing  # type: ignore[attr-defined]


def test_lazy_matmul_is_orchids() -> None:
    assert ramnet.matmul is ramnet.orchid.matmul
    assert importlib.import_module("ramnet").__version__ == ramnet.__version__


ERROR_NAMES = [n for n in RAMNET_ALL if n.endswith("Error")]


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_error_derives_from_ramnet_error(name: str) -> None:
    cls = getattr(ramnet, name)
    assert inspect.isclass(cls) and issubclass(cls, Exception)
    assert issubclass(cls, ramnet.RamnetError)
    assert cls is getattr(ramnet._errors, name)


def test_every_error_class_in_errors_module_is_exported() -> None:
    classes = {
        name
        for name, obj in vars(ramnet._errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception)
    }
    assert classes == set(ERROR_NAMES)
    assert sorted(ramnet._errors.__all__) == sorted(ERROR_NAMES)


def test_error_bases() -> None:
    assert issubclass(ramnet.InvalidInputError, ValueError)
    assert issubclass(ramnet.UnsupportedDTypeError, TypeError)
    assert issubclass(ramnet.OverflowRiskError, OverflowError)
    assert issubclass(ramnet.InputFileError, OSError)
    assert issubclass(ramnet.OutputFileError, OSError)
    assert issubclass(ramnet.BackendUnavailableError, RuntimeError)
    assert issubclass(ramnet.KernelError, RuntimeError)
    assert not issubclass(ramnet.KernelError, ramnet.InvalidInputError)  # exit 1, not 2
    for name in (
        "ShapeMismatchError",
        "UnsupportedDTypeError",
        "NonFiniteInputError",
        "OverflowRiskError",
        "InputFileError",
        "OutputFileError",
        "ConfigError",
        "BackendUnavailableError",
    ):
        assert issubclass(getattr(ramnet, name), ramnet.InvalidInputError), name


def test_version_string() -> None:
    parts = ramnet.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


VALKYRIE_ALL = [
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


def test_valkyrie_all_pinned() -> None:
    import ramnet.valkyrie

    assert sorted(ramnet.valkyrie.__all__) == VALKYRIE_ALL
    for name in VALKYRIE_ALL:
        assert getattr(ramnet.valkyrie, name) is not None
