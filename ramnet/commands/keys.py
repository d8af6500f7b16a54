"""``ramnet keys``: create and show the node key; bind a payout address and check a binding."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ramnet.commands import _node
from ramnet.commands._common import group, guarded, print_json, stderr
from ramnet.commands._options import KeyFileOption

app = group("Manage this node's Ed25519 key.")


@app.command("init")
@guarded
def keys_init(
    key_file: KeyFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create a new node key (file mode 0600); refuses to replace one without --force."""
    from ramnet.valkyrie import NodeKey, save_key

    path = _node.key_path(key_file)
    key = save_key(NodeKey.generate(), path, force=force)
    stderr().print(f"wrote {path}", markup=False, soft_wrap=True)
    typer.echo(key.node_id)


@app.command("show")
@guarded
def keys_show(key_file: KeyFileOption = None) -> None:
    """Print the node id: the public key as 64 lowercase hex digits."""
    from ramnet.valkyrie import load_key

    typer.echo(load_key(_node.key_path(key_file)).node_id)


@app.command("bind")
@guarded
def keys_bind(
    payout_address: Annotated[str, typer.Option("--payout-address", help="Where to be paid.")],
    key_file: KeyFileOption = None,
) -> None:
    """Print a statement, signed by the node key, that binds a payout address to this node."""
    from ramnet.valkyrie import bind_payout

    print_json(bind_payout(_node.node_key(str(_node.key_path(key_file))), payout_address))


@app.command("check-binding")
@guarded
def keys_check_binding(
    binding: Annotated[str, typer.Argument(help="The binding's JSON file, or - for stdin.")],
) -> None:
    """Check a payout binding: exit 0 when its signature is valid, 1 when not, 2 if unreadable."""
    from ramnet._errors import InputFileError
    from ramnet.valkyrie import check_binding

    try:
        text = sys.stdin.read(1 << 16) if binding == "-" else Path(binding).read_text()[: 1 << 16]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {binding}: {exc}") from exc
    if not check_binding(text):
        stderr().print("invalid: bad signature", markup=False)
        raise typer.Exit(1)
    typer.echo("valid")
