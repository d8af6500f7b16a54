"""A node's wallet binding at registration: checked by the coordinator, recorded, shown on the
ledger; a forged one refused with one line and nothing registered. Served over HTTP in-process
(tests/mesh_server.py); the real processes are in tests/mesh/e2e/test_wallet_binding_e2e.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ramnet.mesh.coordinator.payouts import BindingRefusedError
from ramnet.mesh.coordinator.service import Coordinator, CoordinatorConfig
from ramnet.mesh.nodes.client import MeshClient, MeshRequestError
from ramnet.mesh.protocol import messages as m
from ramnet.mesh.protocol.routes import url
from ramnet.mesh.state.errors import NotFoundError
from ramnet.valkyrie import NodeKey
from ramnet.valkyrie._binding712 import binding_typed_data, check_binding, make_binding
from tests.eth_wallet import OTHER_WALLET_KEY as OTHER_KEY
from tests.eth_wallet import WALLET_ADDRESS as WALLET
from tests.eth_wallet import sign
from tests.mesh_server import served


def binding_for(key: NodeKey, address: str = WALLET) -> dict[str, Any]:
    typed = binding_typed_data(key.public_key, address)
    return make_binding(key, typed, sign(typed))


def wallet_forged(key: NodeKey) -> dict[str, Any]:
    """The node's own signature, but the wallet's signature is another address's."""
    document = binding_for(key)
    other = sign(document["typedData"], OTHER_KEY)
    return {**document, "walletSignature": other}


def request(binding: dict[str, Any] | None, **fields: Any) -> m.RegisterRequest:
    body = {**fields, **({} if binding is None else {"binding": binding})}
    return msgspec.convert(body, m.RegisterRequest)


@pytest.fixture
def coord(tmp_path: Path) -> Iterator[Coordinator]:
    c = Coordinator(CoordinatorConfig(data_dir=tmp_path, write_behind=0))
    yield c
    c.close()


def account(coord: Coordinator, node: str) -> dict[str, Any]:
    from ramnet.mesh.coordinator.payouts import with_payouts

    view = with_payouts(coord.ledger.show(), coord.store)
    return next(a for a in view["accounts"] if a["node_id"] == node)


def test_valid_binding_recorded(coord: Coordinator) -> None:
    key = NodeKey.generate()
    document = binding_for(key)
    coord.register(key.node_id, request(document, bond=5))
    node = coord.store.get_node(key.node_id)
    assert (node.payout_address, node.payout_bound) == (WALLET, True)
    stored = coord.store.payout_binding(key.node_id)
    assert stored is not None and check_binding(json.loads(stored)).valid
    assert json.loads(stored) == document
    shown = account(coord, key.node_id)
    assert (shown["payout_address"], shown["payout_bound"]) == (WALLET, True)
    # The same address named beside the binding (any case) is accepted.
    coord.register(key.node_id, request(document, payout_address=WALLET.lower()))
    # Registering again without a binding keeps it; another address unbinds.
    coord.register(key.node_id, request(None, bond=5))
    assert coord.store.get_node(key.node_id).payout_bound
    coord.register(key.node_id, request(None, payout_address="elsewhere"))
    assert account(coord, key.node_id)["payout_bound"] is False


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        (lambda key: binding_for(NodeKey.generate()), "it binds node"),
        (wallet_forged, "not by the payout address"),
        (
            lambda key: {**binding_for(key), "nodeSignature": "0x" + "00" * 64},
            "node signature",
        ),
    ],
    ids=["another-nodes", "wallet-of-another-address", "bad-node-signature"],
)
def test_forged_binding_refused(coord: Coordinator, forge: Any, said: str) -> None:
    key = NodeKey.generate()
    with pytest.raises(BindingRefusedError, match=said) as caught:
        coord.register(key.node_id, request(forge(key), bond=5))
    assert "\n" not in str(caught.value) and caught.value.http_status == 400
    with pytest.raises(NotFoundError):
        coord.store.get_node(key.node_id)  # nothing registered


def test_other_payout_address_beside_binding_refused(coord: Coordinator) -> None:
    key = NodeKey.generate()
    with pytest.raises(BindingRefusedError, match="names another payout address"):
        coord.register(key.node_id, request(binding_for(key), payout_address="0x" + "1" * 40))


def test_over_http(coord: Coordinator) -> None:
    key, other = NodeKey.generate(), NodeKey.generate()
    with served(coord) as base:
        client = MeshClient(base, key)
        reply = client.post_json(url("register"), {"bond": 3, "binding": binding_for(key)})
        assert reply["node_id"] == key.node_id
        ledger = MeshClient(base, None).get_json(url("ledger"))
        shown = {a["node_id"]: a for a in ledger["accounts"]}[key.node_id]
        assert (shown["payout_address"], shown["payout_bound"]) == (WALLET, True)
        # Another node's binding: 400, one line.
        with pytest.raises(MeshRequestError) as caught:
            MeshClient(base, other).post_json(url("register"), {"binding": binding_for(key)})
        assert caught.value.status == 400
        assert "wallet binding refused: it binds node" in str(caught.value)
        assert "\n" not in str(caught.value)
        # Malformed: refused by the message's bounds before any check (400, the field named).
        with pytest.raises(MeshRequestError) as caught:
            bad = {**binding_for(other), "walletSignature": "0x" + "ab" * 4000}
            MeshClient(base, other).post_json(url("register"), {"binding": bad})
        assert caught.value.status == 400 and "walletSignature" in str(caught.value)
