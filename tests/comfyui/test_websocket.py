"""The bridge's RFC 6455 client against a real socket server written here: the handshake, a
fragmented message, a masked server frame, ping/pong, close, a frame split across reads, and
timeouts that leave a partial frame buffered."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time

import pytest

from comfy_bridge.websocket import BINARY, GUID, TEXT, WebSocket, WebSocketClosed


def _frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", length)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def _read_client_frame(conn: socket.socket) -> tuple[int, bytes]:
    """A frame the client sent: it must be masked."""
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    first, second = exactly(2)
    assert second & 0x80, "a client frame must be masked"
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", exactly(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", exactly(8))[0]
    mask = exactly(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(length)))
    return first & 0x0F, payload


class Server:
    """One connection: answers the upgrade, then runs `script(conn)`."""

    def __init__(self, script, accept_key: str | None = None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.accept_key = accept_key
        self.request = b""
        self.received: list[tuple[int, bytes]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        try:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            key = next(line.split(":", 1)[1].strip() for line in
                       self.request.decode().split("\r\n")
                       if line.lower().startswith("sec-websocket-key:"))
            accept = self.accept_key or base64.b64encode(
                hashlib.sha1((key + GUID).encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                         .encode())
            self.script(conn, self)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            conn.close()
            self.sock.close()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?clientId=abc"


def test_handshake_sends_the_headers_and_text_and_binary_arrive():
    def script(conn, server):
        conn.sendall(_frame(TEXT, b'{"type":"status"}') + _frame(BINARY, b"\x00\x01" * 40000))
        server.received.append(_read_client_frame(conn))

    server = Server(script)
    ws = WebSocket.connect(server.url(), {"Authorization": "Bearer s3cret"})
    first = ws.recv(5)
    second = ws.recv(5)
    ws.send_text("hello")
    server.thread.join(5)
    assert server.error is None
    assert b"GET /ws?clientId=abc HTTP/1.1" in server.request
    assert b"Authorization: Bearer s3cret" in server.request
    assert (first.opcode, first.text) == (TEXT, '{"type":"status"}')
    assert (second.opcode, len(second.data)) == (BINARY, 80000)  # a 16-bit length field
    assert server.received == [(TEXT, b"hello")]


def test_a_fragmented_message_with_a_ping_inside_is_joined_and_the_ping_answered():
    def script(conn, server):
        conn.sendall(_frame(TEXT, b"hel", fin=False) + _frame(0x9, b"are you there")
                     + _frame(0x0, b"lo ", fin=False) + _frame(0x0, b"world"))
        server.received.append(_read_client_frame(conn))

    server = Server(script)
    ws = WebSocket.connect(server.url())
    message = ws.recv(5)
    server.thread.join(5)
    assert server.error is None
    assert message.text == "hello world"
    assert server.received == [(0xA, b"are you there")]  # the pong echoes the ping


def test_a_masked_server_frame_and_a_large_one_split_across_reads():
    big = os.urandom(70000)  # a 64-bit length field

    def script(conn, server):
        conn.sendall(_frame(TEXT, b"masked text", mask=b"\x01\x02\x03\x04"))
        data = _frame(BINARY, big)
        for start in range(0, len(data), 1000):  # many small TCP writes
            conn.sendall(data[start:start + 1000])
            time.sleep(0.0005)

    server = Server(script)
    ws = WebSocket.connect(server.url())
    assert ws.recv(5).text == "masked text"
    assert ws.recv(10).data == big
    server.thread.join(5)
    assert server.error is None


def test_a_timeout_returns_none_and_keeps_a_partial_frame():
    gate = threading.Event()

    def script(conn, server):
        data = _frame(TEXT, b"after the pause")
        conn.sendall(data[:5])
        gate.wait(5)
        conn.sendall(data[5:])
        time.sleep(0.2)

    server = Server(script)
    ws = WebSocket.connect(server.url())
    started = time.monotonic()
    assert ws.recv(0.2) is None  # half a frame: not a message yet
    assert time.monotonic() - started < 1.0
    gate.set()
    assert ws.recv(5).text == "after the pause"
    server.thread.join(5)


def test_a_close_frame_is_answered_and_raises():
    def script(conn, server):
        conn.sendall(_frame(0x8, struct.pack(">H", 1001) + b"going away"))
        server.received.append(_read_client_frame(conn))

    server = Server(script)
    ws = WebSocket.connect(server.url())
    with pytest.raises(WebSocketClosed, match="1001 going away"):
        ws.recv(5)
    server.thread.join(5)
    assert server.received == [(0x8, struct.pack(">H", 1001))]
    with pytest.raises(WebSocketClosed):
        ws.recv(0.1)


def test_a_dropped_connection_raises_instead_of_waiting():
    def script(conn, server):
        conn.sendall(_frame(TEXT, b"last words"))

    server = Server(script)
    ws = WebSocket.connect(server.url())
    assert ws.recv(5).text == "last words"
    with pytest.raises(WebSocketClosed):
        ws.recv(5)


def test_a_wrong_accept_key_and_a_refused_connection_are_errors():
    server = Server(lambda conn, s: None, accept_key="bm90IHRoZSByaWdodCBrZXk=")
    with pytest.raises(WebSocketClosed, match="refused the WebSocket upgrade"):
        WebSocket.connect(server.url())
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(WebSocketClosed, match="cannot connect"):
        WebSocket.connect(f"ws://127.0.0.1:{port}/ws", timeout=2)
