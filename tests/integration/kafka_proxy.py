"""A TCP proxy in front of the local broker that sees each Kafka request before the broker does,
so a test can act at an exact point of the protocol (freeze the broker as an offset commit passes).

The broker advertises the proxy's port (`LocalBroker.advertised_port`), so every client, once it
has read the metadata, reaches the broker through it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class KafkaProxy:
    """Forwards connections on `port` to the broker on `target`; `before_request(api_key)` runs
    for each request a client sends, before it is passed on."""

    def __init__(self, port: int, target: int, before_request: Callable[[int], None]) -> None:
        self.target = target
        self.before_request = before_request
        self._server = socket.create_server(("127.0.0.1", port))
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._requests, args=(client,), daemon=True).start()

    def _requests(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return
        self._sockets.append(upstream)
        threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()
        try:
            while (head := _read_exactly(client, 4)) is not None:
                frame = _read_exactly(client, _SIZE.unpack(head)[0])
                if frame is None:
                    break
                self.before_request(_API_KEY.unpack_from(frame)[0])
                upstream.sendall(head + frame)
        except OSError:
            pass
        finally:
            _shut_down(client, upstream)

    @staticmethod
    def _answers(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            _shut_down(client, upstream)


def _shut_down(*socks: socket.socket) -> None:
    """Ends both directions of a proxied connection, whichever side went first."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
