"""Only the UI's own pages may drive it: a foreign Host (DNS rebinding) and a cross-site post are
refused; every reply carries a strict Content-Security-Policy; ``ramnet ui`` refuses a
non-loopback --host without --allow-remote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.ui.conftest import make_app


def _client(tmp_path: Path) -> Any:
    from starlette.testclient import TestClient

    from ramnet.ui.security import local_hosts

    return TestClient(
        make_app(tmp_path, hosts=local_hosts("127.0.0.1", 8765)), base_url="http://127.0.0.1:8765"
    )


def test_only_its_own_host_names_are_answered(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/run").status_code == 200
        assert client.get("/run", headers={"host": "localhost:8765"}).status_code == 200
        rebound = client.get("/run", headers={"host": "attacker.example:8765"})
        assert rebound.status_code == 403 and "own address" in rebound.text


def test_a_cross_site_post_is_refused(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        form = {"source": "random", "shape": "4x4x4", "dtype": "int8"}
        foreign = client.post("/run", data=form, headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403
        sneaky = client.post("/lend/start", data={}, headers={"sec-fetch-site": "cross-site"})
        assert sneaky.status_code == 403
        own = client.post(
            "/mode", data={"mode": "mesh"}, headers={"origin": "http://127.0.0.1:8765"}
        )
        assert own.status_code == 200  # followed to /run


def test_every_reply_carries_the_security_headers(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        for path in ("/run", "/static/vendor/htmx.min.js", "/nope"):
            headers = client.get(path).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "unsafe-inline" not in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"


def test_no_page_has_an_inline_script_or_handler(tmp_path: Path) -> None:
    import re

    with _client(tmp_path) as client:
        for path in ("/run", "/verify", "/identity", "/lend"):
            page = client.get(path).text
            assert not re.search(r"\son[a-z]+=", page), path
            for script in re.findall(r"<script([^>]*)>", page):
                assert "src=" in script or 'type="application/json"' in script, path


def test_a_non_loopback_host_needs_allow_remote() -> None:
    from ramnet.cli import app

    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--no-browser"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output and "Traceback" not in result.output
