"""``ramnet keys``: create and show the node key; bind a payout wallet (EIP-712) and check it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands import _node
from ramnet.commands._common import group, guarded, print_json, stderr, stdout
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
    payout_address: Annotated[
        str | None,
        typer.Option("--payout-address", help="The Ethereum address (0x...) to be paid at."),
    ] = None,
    wallet_signature: Annotated[
        str | None,
        typer.Option(
            "--wallet-signature",
            help="The wallet's eth_signTypedData_v4 signature (0x...): write the binding file.",
        ),
    ] = None,
    nonce: Annotated[
        int | None, typer.Option("--nonce", min=0, help="The statement's nonce (default random).")
    ] = None,
    issued_at: Annotated[
        int | None,
        typer.Option("--issued-at", min=0, help="The statement's unix time (default now)."),
    ] = None,
    typed_data: Annotated[
        str | None,
        typer.Option("--typed-data", help="The typed data printed earlier (a file, - for stdin)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the binding.")] = Path(
        "binding.json"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    key_file: KeyFileOption = None,
) -> None:
    """Bind a payout address to this node: EIP-712 typed data for a wallet, then the binding.

    Without --wallet-signature, prints the typed data (RamnetNodeBinding) for the payout
    address's wallet to sign. With it (and the same --nonce and --issued-at, or --typed-data),
    checks that the signature recovers the address, adds the node key's signature and writes the
    binding file (--out).
    """
    from ramnet.commands import _binding

    key = _node.node_key(str(_node.key_path(key_file)))
    statement = _binding.statement(
        key, payout_address, nonce=nonce, issued_at=issued_at, typed_data_file=typed_data
    )
    if wallet_signature is None:
        print_json(statement)
        if not as_json:
            stderr().print(_binding.next_step(statement), markup=False, soft_wrap=True)
        return
    if typed_data is None and (nonce is None or issued_at is None):
        raise InvalidInputError(
            "with --wallet-signature give the --nonce and --issued-at of the typed data the "
            "wallet signed (or --typed-data FILE)"
        )
    document = _binding.bind(key, statement, wallet_signature, out, force=force)
    if as_json:
        print_json(document)
        return
    message = document["typedData"]["message"]
    stderr().print(
        f"wrote {out}: node {key.node_id} is paid at {message['payoutAddress']}",
        markup=False,
        soft_wrap=True,
    )


@app.command("check-binding")
@guarded
def keys_check_binding(
    binding: Annotated[str, typer.Argument(help="The binding's JSON file, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check a wallet binding's two signatures: exit 0 when valid, 1 when not, 2 if unreadable."""
    from ramnet.commands import _binding

    result = _binding.check(binding)
    if as_json:
        print_json(_binding.check_summary(result))
    elif result.valid:
        stdout().print(
            f"valid: node {result.node_id} is paid at {result.payout_address}",
            style="green",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        stderr().print(
            f"invalid: {'; '.join(result.problems)}", style="red", markup=False, soft_wrap=True
        )
    if not result.valid:
        raise typer.Exit(1)
