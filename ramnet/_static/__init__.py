"""RAMNET's front-end assets, shipped inside the package: the shared stylesheet and the vendored,
pinned htmx, htmx SSE extension and uPlot files (``vendor/MANIFEST.md``: versions, sha256s and
licenses). Pages served by RAMNET (the coordinator's dashboard, ``ramnet ui``) load them from
RAMNET itself, so they make no request to another host and work offline.

Part of the shared base: it imports no layer and no web framework; a server wraps ``asset`` in
its own response type.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from ramnet._errors import InvalidInputError

__all__ = [
    "ASSET_NAMES",
    "HTMX",
    "HTMX_SSE",
    "RAMNET_CSS",
    "UPLOT_CSS",
    "UPLOT_JS",
    "UnknownAssetError",
    "asset",
    "content_type",
    "static_path",
]

RAMNET_CSS = "ramnet.css"
HTMX = "vendor/htmx.min.js"
HTMX_SSE = "vendor/sse.js"
UPLOT_JS = "vendor/uPlot.iife.min.js"
UPLOT_CSS = "vendor/uPlot.min.css"

# Only these are served: a request can never reach another file of the package.
ASSET_NAMES: frozenset[str] = frozenset({RAMNET_CSS, HTMX, HTMX_SSE, UPLOT_JS, UPLOT_CSS})

_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


class UnknownAssetError(InvalidInputError, LookupError):
    """A name that is not one of RAMNET's front-end assets (``ASSET_NAMES``)."""

    http_status = 404


def static_path() -> Path:
    """The folder that holds the assets (``ramnet/_static`` of the installed package).

    Returns:
        The folder's path on the file system (also inside the one-file executable, which unpacks
        its data files before it runs).

    Raises:
        UnknownAssetError: The package is not installed as files (a zip import).
    """
    folder = resources.files(__name__)
    if not isinstance(folder, Path):
        raise UnknownAssetError(f"RAMNET's front-end assets are not files on disk: {folder}")
    return folder


def _checked(name: str) -> str:
    if name not in ASSET_NAMES:
        raise UnknownAssetError(f"no front-end asset named {name!r}")
    return name


def asset(name: str) -> bytes:
    """The bytes of one asset.

    Args:
        name: Its name relative to ``ramnet/_static``, one of ``ASSET_NAMES`` (for example
            ``"vendor/htmx.min.js"``).

    Returns:
        The file's contents.

    Raises:
        UnknownAssetError: ``name`` is not one of ``ASSET_NAMES``.
    """
    resource = resources.files(__name__)
    for part in PurePosixPath(_checked(name)).parts:
        resource = resource.joinpath(part)
    return resource.read_bytes()


def content_type(name: str) -> str:
    """The HTTP ``Content-Type`` to serve an asset with.

    Args:
        name: One of ``ASSET_NAMES``.

    Returns:
        ``text/css`` or ``text/javascript``, with ``charset=utf-8``.

    Raises:
        UnknownAssetError: ``name`` is not one of ``ASSET_NAMES``.
    """
    return _CONTENT_TYPES[PurePosixPath(_checked(name)).suffix]
