"""Scripted HTTP servers on 127.0.0.1 for the client's tests: each connection runs a script."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

Script = Callable[[socket.socket, int], None]


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """One request's head (without the blank line) and body (by its Content-Length); two empty
    byte strings once the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b"", b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def scripted_servers() -> Iterator[Callable[[Script], tuple[str, list[int]]]]:
    """A fixture body: ``start(script)`` serves ``script(conn, n)`` on each n-th connection in a
    thread of its own, and returns the server's URL and the connection numbers seen so far."""
    listeners: list[socket.socket] = []

    def start(script: Script) -> tuple[str, list[int]]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listeners.append(listener)
        seen: list[int] = []

        def serve(conn: socket.socket, n: int) -> None:
            with conn:
                script(conn, n)

        def loop() -> None:
            n = 0
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                seen.append(n)
                threading.Thread(target=serve, args=(conn, n), daemon=True).start()
                n += 1

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", seen

    yield start
    for listener in listeners:
        listener.close()
