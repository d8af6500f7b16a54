"""``ramnet ui`` as a command: its help, a busy port as one line, and a non-loopback host
refused without --allow-remote (test_security.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner


def test_help_names_every_option() -> None:
    from ramnet.cli import app

    result = CliRunner().invoke(app, ["ui", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--no-browser", "--allow-remote", "--work-dir"):
        assert option in result.output


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    from ramnet.cli import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["ui", "--no-browser", "--port", str(port), "--work-dir", str(tmp_path / "w"),
             "--key-file", str(tmp_path / "node.key")],
        )  # fmt: skip
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
