"""``ramnet ledger``: show the mesh's accounts; grant credit on the coordinator's host."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ramnet._errors import InvalidInputError
from ramnet.commands import _node
from ramnet.commands._common import group, guarded, print_json, stdout
from ramnet.commands._options import CaFileOption, CoordinatorOption, JsonOption

if TYPE_CHECKING:
    from rich.text import Text

app = group("The mesh's ledger.")


@app.command("show")
@guarded
def ledger_show(
    coordinator: CoordinatorOption = None,
    ca_file: CaFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every account (bond, balance, slashed, payout address) and the conserved totals.

    A payout address marked "bound" was bound to its node by a wallet binding that the
    coordinator checked (ramnet keys bind; worker start --binding).
    """
    from ramnet.mesh import MeshClient
    from ramnet.mesh.protocol.routes import url

    settings = _node.settings(coordinator=coordinator, ca_file=str(ca_file) if ca_file else None)
    client = MeshClient(settings.coordinator, None, retry_for=10, ca_file=settings.ca_file)
    info = client.get_json(url("ledger"))
    if as_json:
        print_json(info)
        return
    from rich.table import Table

    table = Table(title="ledger")
    for col in ("node", "bond", "balance", "slashed"):
        table.add_column(col, justify="right")
    table.add_column("payout")
    for acct in info["accounts"]:
        table.add_row(
            acct["node_id"][:16],
            str(acct["bond"]),
            str(acct["balance"]),
            str(acct["slashed"]),
            _payout(acct),
        )
    stdout().print(table)
    totals = info["totals"]
    stdout().print(" ".join(f"{k}={v}" for k, v in totals.items()), markup=False)


def _payout(account: dict[str, Any]) -> Text:
    """An account's payout address, and whether a checked wallet binding binds it."""
    from rich.text import Text

    address = account.get("payout_address")
    if not address:
        return Text("-")
    if account.get("payout_bound"):
        return Text.assemble(str(address), (" bound", "green"))
    return Text.assemble(str(address), (" not bound", "yellow"))


@app.command("grant")
@guarded
def ledger_grant(
    node_id: Annotated[str, typer.Argument(help="The account's node id (64 hex digits).")],
    amount: Annotated[int, typer.Argument(min=1, help="Units to mint into its balance.")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The coordinator's state folder.")
    ] = None,
) -> None:
    """Mint credit into an account (operators, on the coordinator's host)."""
    from ramnet.config import user_data_dir
    from ramnet.mesh.state.ledger import Ledger
    from ramnet.mesh.state.store import Store

    folder = data_dir or user_data_dir() / "coordinator"
    if not (folder / "state.sqlite").exists():
        raise InvalidInputError(f"no coordinator state in {folder}")
    store = Store(folder / "state.sqlite")
    try:
        Ledger(store).grant(node_id, amount)
        print_json(Ledger(store).account(node_id))
    finally:
        store.close()
