"""The vendored front-end files are the pinned ones (vendor/MANIFEST.md), licensed, and served
only by name."""

from __future__ import annotations

import hashlib
import re

import pytest

from ramnet import _static
from ramnet._errors import InvalidInputError


def _manifest_rows() -> dict[str, str]:
    text = (_static.static_path() / "vendor" / "MANIFEST.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", text, flags=re.MULTILINE)
    return dict(rows)


def test_manifest_pins_every_vendored_file() -> None:
    rows = _manifest_rows()
    vendored = {name.removeprefix("vendor/") for name in _static.ASSET_NAMES if "/" in name}
    assert set(rows) == vendored
    for name, digest in rows.items():
        assert hashlib.sha256(_static.asset(f"vendor/{name}")).hexdigest() == digest, name


def test_each_vendored_package_ships_its_license() -> None:
    licenses = _static.static_path() / "vendor" / "LICENSES"
    names = sorted(path.name for path in licenses.iterdir())
    assert names == [
        "htmx-ext-sse-LICENSE.txt",
        "htmx.org-LICENSE.txt",
        "uplot-LICENSE.txt",
    ]
    for path in licenses.iterdir():
        assert "Permission" in path.read_text(encoding="utf-8")


def test_assets_and_their_content_types() -> None:
    assert b":focus-visible" in _static.asset(_static.RAMNET_CSS)
    assert _static.content_type(_static.RAMNET_CSS).startswith("text/css")
    assert _static.content_type(_static.HTMX).startswith("text/javascript")
    assert b"htmx" in _static.asset(_static.HTMX)
    assert b"defineExtension('sse'" in _static.asset(_static.HTMX_SSE)
    assert b"uPlot" in _static.asset(_static.UPLOT_JS)
    assert (_static.static_path() / _static.UPLOT_CSS).is_file()


@pytest.mark.parametrize(
    "name", ["__init__.py", "../_errors.py", "vendor/MANIFEST.md", "/etc/passwd", "", "vendor"]
)
def test_only_named_assets_are_served(name: str) -> None:
    with pytest.raises(_static.UnknownAssetError) as caught:
        _static.asset(name)
    assert isinstance(caught.value, InvalidInputError)
    assert caught.value.http_status == 404
    with pytest.raises(_static.UnknownAssetError):
        _static.content_type(name)


def test_vendored_scripts_name_no_other_host_to_fetch() -> None:
    # uPlot's licence banner names its repository; nothing else may name a host to load from.
    for name in (_static.HTMX, _static.HTMX_SSE, _static.UPLOT_JS):
        text = _static.asset(name).decode("utf-8")
        hosts = set(re.findall(r"https?://([A-Za-z0-9.-]+)", text)) - {"github.com"}
        assert not hosts, (name, hosts)
