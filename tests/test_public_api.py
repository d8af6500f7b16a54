"""The public API, pinned: a change to these lists must be deliberate."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import ramnet
import ramnet._errors
import ramnet.orchid

RAMNET_ALL = [
    "BackendUnavailableError",
    "ConfigError",
    "EngineUnavailableError",
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
    "StoreChangedError",
    "TraceFormatError",
    "UnsupportedDTypeError",
    "__version__",
    "matmul",
    "verify_trace",
]

ORCHID_ALL = [
    "BlockProduct",
    "Grid",
    "JobSpec",
    "SUPPORTED_DTYPES",
    "TraceHook",
    "add",
    "copy",
    "default_threads",
    "kernel_info",
    "load_npy",
    "make_grid",
    "matmul",
    "matmul_many",
    "prepare",
    "random_operands",
    "result_dtype",
    "save_npy",
    "scale",
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


MESH_ALL = [
    "AXIS_OF_STYLE",
    "Auditor",
    "BLOCKS_PER_NODE",
    "CoordinatorConfig",
    "MeshClient",
    "MeshError",
    "MeshJobFailed",
    "MeshProtocolError",
    "MeshRequestError",
    "MeshUnavailableError",
    "PlanInputError",
    "ResultCheckFailed",
    "STYLES",
    "ShardPlan",
    "Style",
    "Worker",
    "check_nodes",
    "grid_for",
    "min_blocks",
    "plan_shards",
    "serve",
    "style_deal",
]


def test_mesh_all_pinned() -> None:
    import ramnet.mesh

    assert sorted(ramnet.mesh.__all__) == MESH_ALL
    for name in MESH_ALL:
        assert getattr(ramnet.mesh, name) is not None


@pytest.mark.parametrize(
    "name", ["Store", "Ledger", "BlobStore", "Coordinator", "create_app", "pack", "sign_request"]
)
def test_mesh_exports_no_internals(name: str) -> None:
    import ramnet.mesh

    with pytest.raises(AttributeError):
        getattr(ramnet.mesh, name)


def test_mesh_names_are_written_once() -> None:
    # The lazy table is the one list: __all__ comes from it, and the imports type checkers read
    # name the same things from the same modules.
    import ast

    import ramnet.mesh

    lazy = ramnet.mesh._LAZY
    assert ramnet.mesh.__all__ == sorted(lazy)
    tree = ast.parse(inspect.getsource(ramnet.mesh))
    typed = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("ramnet.mesh.")
        for alias in node.names
    }
    assert typed == {name: f"ramnet.mesh.{module}" for name, module in lazy.items()}
    for name, module in lazy.items():
        source = importlib.import_module(f"ramnet.mesh.{module}")
        assert getattr(ramnet.mesh, name) is getattr(source, name)


@pytest.mark.parametrize(
    ("package", "table"),
    [("ramnet.orchid", "_PUBLIC"), ("ramnet.valkyrie", "_PUBLIC"), ("ramnet.sidecar", "_LAZY")],
)
def test_lazy_names_are_typed_as_their_modules_define_them(package: str, table: str) -> None:
    # The lazy table is the one list of what a package exports; the imports type checkers read
    # (under TYPE_CHECKING) name the same things from the same modules, so a user's mypy sees
    # ramnet.orchid.matmul's real signature, not Any.
    import ast

    module = importlib.import_module(package)
    lazy = getattr(module, table)
    assert sorted(module.__all__) == sorted(lazy)
    tree = ast.parse(inspect.getsource(module))
    typed = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith(f"{package}.")
        for alias in node.names
    }
    assert typed == {name: f"{package}.{source}" for name, source in lazy.items()}


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
        "EngineUnavailableError",
        "StoreChangedError",
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
    "NodeKey",
    "Trace",
    "TraceRecorder",
    "Verdict",
    "bind_payout",
    "block_digest",
    "check_binding",
    "check_fraud_proof",
    "commit_matrix",
    "decode",
    "encode",
    "float_range_check",
    "freivalds",
    "load_key",
    "load_or_create_key",
    "make_fraud_proof",
    "prove_matmul",
    "read_trace_bytes",
    "save_key",
    "verify_signature",
    "verify_trace",
    "write_trace",
]


def test_valkyrie_all_pinned() -> None:
    import ramnet.valkyrie

    assert sorted(ramnet.valkyrie.__all__) == VALKYRIE_ALL
    for name in VALKYRIE_ALL:
        assert getattr(ramnet.valkyrie, name) is not None
    assert len(set(ramnet.valkyrie.__all__)) == len(ramnet.valkyrie.__all__)
    namespace: dict[str, object] = {}
    exec("from ramnet.valkyrie import *", namespace)
    assert set(VALKYRIE_ALL) <= set(namespace)


# Internal names, reached through their modules only (a sample of what used to be exported).
ORCHID_INTERNAL = ["execute_blocks", "parallel_map", "tile_digests", "resolve_backend", "P61"]
VALKYRIE_INTERNAL = ["merkle_path", "open_tile", "verify_rounds", "row_strip_tile", "fp2_mul"]


@pytest.mark.parametrize(
    ("package", "name"),
    [("ramnet.orchid", n) for n in ORCHID_INTERNAL]
    + [("ramnet.valkyrie", n) for n in VALKYRIE_INTERNAL],
)
def test_internal_names_are_not_exported(package: str, name: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError):
        getattr(module, name)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def _under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_orchid_imports_no_layer_above_it() -> None:
    # Compute only: importing ORCHID and running its public functions loads no VALKYRIE, mesh,
    # sidecar or CLI module (the prime field is VALKYRIE's).
    loaded = _loaded_after(
        "import numpy as np\n"
        "from ramnet import orchid\n"
        "a = np.ones((3, 4), np.int8)\n"
        "orchid.matmul(a, a.T.copy())\n"
        "orchid.triad(np.zeros(8), np.ones(8), np.ones(8), 2.0)\n"
        "orchid.kernel_info()\n"
        "[getattr(orchid, name) for name in orchid.__all__]"
    )
    assert "ramnet.orchid._matmul" in loaded
    above = ("ramnet.valkyrie", "ramnet.mesh", "ramnet.sidecar", "ramnet.cli", "ramnet.commands")
    assert _under(loaded, *above) == set()


def test_importing_a_package_loads_none_of_its_modules() -> None:
    # Each public name loads its module on first use: the packages alone cost nearly nothing.
    loaded = _loaded_after("import ramnet.orchid, ramnet.valkyrie")
    assert _under(loaded, "ramnet.orchid", "ramnet.valkyrie") == {
        "ramnet.orchid",
        "ramnet.valkyrie",
    }
    assert _under(loaded, "numpy", "nacl", "blake3") == set()


def test_the_package_says_it_is_typed() -> None:
    # PEP 561: without py.typed a user's type checker treats every ramnet name as Any.
    import importlib.resources
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    assert importlib.resources.files("ramnet").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["ramnet"]
