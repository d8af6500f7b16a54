"""The server runner's listening socket (transport.server.listen_tcp), on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ramnet.mesh.transport.server import ListenError, listen_tcp


def test_connections_it_accepts_under_asyncio_have_nagle_off() -> None:
    # asyncio turns Nagle off only on sockets that say they are TCP: with it on, a small reply
    # written in two pieces waits for the client's delayed ACK (40 ms on Linux).
    listener = listen_tcp("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()  # the server closes once it has looked
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0


def test_it_is_tcp_and_listening() -> None:
    with listen_tcp("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.get_inheritable()


def test_a_busy_port_is_one_clear_error() -> None:
    with listen_tcp("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=rf"cannot listen on 127\.0\.0\.1:{port}: "):
            listen_tcp("127.0.0.1", port)
