"""Payout addresses: the wallet binding a node presents at registration, and the ledger's view of
where each account is paid.

A node may present its wallet binding (``ramnet keys bind``; ``RegisterRequest.binding``): the
coordinator checks both signatures (``ramnet.valkyrie._binding712.check_binding``) and that the
binding names the registering node, and then records the binding's address as the node's bound
payout address (``Store.register_node(payout_binding=...)``). A binding that does not check is
refused with one line (HTTP 400), and the node is not registered.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ramnet._errors import InvalidInputError
from ramnet.mesh.protocol.messages import WalletBinding
from ramnet.mesh.state.store import Store

__all__ = ["BindingRefusedError", "checked_binding", "with_payouts"]


class BindingRefusedError(InvalidInputError):
    """A registering node's wallet binding that does not check (HTTP 400)."""


def checked_binding(
    node: str, binding: WalletBinding, payout_address: str | None
) -> tuple[str, str]:
    """Check the wallet binding a registering node presents.

    Args:
        node: The registering (signing) node.
        binding: Its binding, as the request decoded it (sizes and hex forms already bounded).
        payout_address: The payout address the request also names, if any: it must be the
            binding's.

    Returns:
        (the bound payout address, EIP-55 checksummed; the binding's JSON to store).

    Raises:
        BindingRefusedError: A signature does not check, the binding names another node, or
            the request's payout address is another one.
    """
    from ramnet.valkyrie._binding712 import BindingFormatError, check_binding, checksum_address

    document = msgspec.to_builtins(binding)
    try:
        result = check_binding(document)
    except BindingFormatError as exc:
        raise BindingRefusedError(f"wallet binding refused: {exc}") from exc
    if not result.valid:
        raise BindingRefusedError(f"wallet binding refused: {result.problems[0]}")
    if result.node_id != node:
        raise BindingRefusedError(
            f"wallet binding refused: it binds node {result.node_id[:16]}..., "
            f"not the registering node {node[:16]}..."
        )
    if payout_address is not None:
        try:
            same = checksum_address(payout_address) == result.payout_address
        except InvalidInputError:
            same = False
        if not same:
            raise BindingRefusedError(
                f"wallet binding refused: it binds {result.payout_address}, but the request "
                "names another payout address"
            )
    return result.payout_address, json.dumps(document, separators=(",", ":"), sort_keys=True)


def with_payouts(view: dict[str, Any], store: Store) -> dict[str, Any]:
    """The ledger's view (``Ledger.show``) with each account's payout address and whether a
    checked wallet binding binds it (``payout_address``, ``payout_bound``)."""
    nodes = {n.node_id: n for n in store.list_nodes()}
    accounts = []
    for account in view.get("accounts", []):
        node = nodes.get(str(account.get("node_id")))
        accounts.append(
            {
                **account,
                "payout_address": None if node is None else node.payout_address,
                "payout_bound": False if node is None else node.payout_bound,
            }
        )
    return {**view, "accounts": accounts}
