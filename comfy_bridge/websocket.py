"""A small RFC 6455 WebSocket client (stdlib only): the handshake, masked frames out,
fragmented messages in, ping/pong and close. `recv(timeout)` returns None when nothing came in
time, so the caller's loop keeps hearing cancels; a partial frame stays buffered across calls."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import time
import urllib.parse
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 << 20  # a preview or status message is far smaller: beyond this is broken


class WebSocketClosed(Exception):
    """The connection ended: a close frame, EOF, a reset, or a protocol violation."""


@dataclass(frozen=True)
class Message:
    opcode: int  # TEXT or BINARY
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


class WebSocket:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.closed = False

    @classmethod
    def connect(cls, url: str, headers: dict[str, str] | None = None,
                timeout: float = 10.0) -> WebSocket:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"'{url}' is not a ws:// or wss:// URL")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        try:
            sock = socket.create_connection((parts.hostname, port), timeout=timeout)
            if secure:
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=parts.hostname)
        except OSError as exc:
            raise WebSocketClosed(f"cannot connect to {parts.netloc}: {exc}") from None
        key = base64.b64encode(os.urandom(16)).decode()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        ws = cls(sock)
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, answer = ws._read_handshake(time.monotonic() + timeout)
        except OSError as exc:
            sock.close()
            raise WebSocketClosed(f"handshake with {parts.netloc} failed: {exc}") from None
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if status != 101 or answer.get("sec-websocket-accept") != expected:
            sock.close()
            raise WebSocketClosed(f"{url} refused the WebSocket upgrade (HTTP {status})")
        return ws

    def _read_handshake(self, deadline: float) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > 65536:
                raise OSError("handshake answer too long")
            self._fill(deadline)
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)  # frames may follow the answer in the same packet
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise OSError(f"not an HTTP answer: {lines[0]!r}") from None
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return status, fields

    def _fill(self, deadline: float) -> None:
        """Read what the socket has into the buffer; socket.timeout when the deadline passes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self._buffer += chunk

    def _frame(self) -> tuple[bool, int, bytes] | None:
        """One complete frame from the buffer (fin, opcode, payload), or None if incomplete."""
        buf = self._buffer
        if len(buf) < 2:
            return None
        fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
        if buf[0] & 0x70:
            raise WebSocketClosed("a frame with reserved bits set (no extension was agreed)")
        masked, length, offset = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, offset = struct.unpack(">H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, offset = struct.unpack(">Q", buf[2:10])[0], 10
        if length > MAX_MESSAGE:
            raise WebSocketClosed(f"a frame of {length} bytes is over the limit")
        mask = b""
        if masked:  # servers must not mask, but reading it costs nothing
            mask, offset = bytes(buf[offset:offset + 4]), offset + 4
        if len(buf) < offset + length:
            return None
        payload = bytes(buf[offset:offset + length])
        del buf[:offset + length]
        if masked:
            payload = _apply_mask(payload, mask)
        return fin, opcode, payload

    def recv(self, timeout: float) -> Message | None:
        """The next data message, or None if none arrived within `timeout` seconds.
        Pings are answered, pongs dropped; a close frame is answered and raises."""
        if self.closed:
            raise WebSocketClosed("the connection is closed")
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is None:
                try:
                    self._fill(deadline)
                except TimeoutError:
                    return None
                except (OSError, ssl.SSLError) as exc:
                    self._abort()
                    raise WebSocketClosed(str(exc)) from None
                continue
            fin, opcode, payload = frame
            if opcode == PING:
                self._send_frame(PONG, payload)
            elif opcode == PONG:
                continue
            elif opcode == CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", errors="replace")
                self.close(code if code not in (1005, 1006) else 1000)
                raise WebSocketClosed(f"the server closed the connection ({code} {reason})"
                                      .rstrip())
            elif opcode in (TEXT, BINARY):
                if self._fragments:
                    raise WebSocketClosed("a new message began inside a fragmented one")
                if fin:
                    return Message(opcode, payload)
                self._fragments, self._fragment_opcode = [payload], opcode
            elif opcode == CONTINUATION:
                if not self._fragments:
                    raise WebSocketClosed("a continuation frame with no message to continue")
                self._fragments.append(payload)
                if sum(len(f) for f in self._fragments) > MAX_MESSAGE:
                    raise WebSocketClosed("a fragmented message over the limit")
                if fin:
                    data, self._fragments = b"".join(self._fragments), []
                    return Message(self._fragment_opcode, data)
            else:
                raise WebSocketClosed(f"unknown frame opcode {opcode:#x}")

    def send_text(self, text: str) -> None:
        self._send_frame(TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self._send_frame(BINARY, data)

    def ping(self, data: bytes = b"") -> None:
        self._send_frame(PING, data)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        """One final frame, masked as a client must (RFC 6455 section 5.3)."""
        length = len(payload)
        head = bytes([0x80 | opcode])
        if length < 126:
            head += bytes([0x80 | length])
        elif length < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", length)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", length)
        mask = os.urandom(4)
        try:
            self._sock.settimeout(5.0)
            self._sock.sendall(head + mask + _apply_mask(payload, mask))
        except OSError as exc:
            self._abort()
            raise WebSocketClosed(f"send failed: {exc}") from None

    def close(self, code: int = 1000) -> None:
        """Say goodbye (best effort) and close the socket."""
        if self.closed:
            return
        with contextlib.suppress(WebSocketClosed):
            self._send_frame(CLOSE, struct.pack(">H", code))
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()


def _apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, a whole machine word at a time (previews are ~50 KiB)."""
    if not data:
        return data
    repeated = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        len(data), "little")
