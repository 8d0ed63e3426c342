"""A minimal asyncio WebSocket client (RFC 6455) for load generation.

It does the opening handshake, masks what it sends, answers pings and closes, and hands the
bytes of every complete run of frames to `frames_received` in one call, so a subclass can
scan many frames at once with a compiled pattern instead of decoding each one. Server frames
are assumed unmasked and unfragmented (aiohttp, ws and every server benchmarked here send
whole frames). Not a general client: no extensions, no subprotocols, no TLS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from typing import cast
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class HandshakeError(Exception):
    pass


def apply_mask(mask: bytes, data: bytes) -> bytes:
    """XOR `data` with the 4-byte `mask` repeated (RFC 6455 section 5.3); its own inverse."""
    n = len(data)
    if n == 0:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode_frame(payload: bytes, opcode: int = OP_TEXT, *, masked: bool = True) -> bytes:
    """One final frame: masked, as RFC 6455 requires of clients, or not, as servers send."""
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + apply_mask(mask, payload)


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server answers a Sec-WebSocket-Key with."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - RFC 6455


def split_url(url: str) -> tuple[str, int, str]:
    """host, port and path of a ws:// or http:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "http") or not parts.hostname:
        raise ValueError(f"expected a ws:// URL, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


class WsClientProtocol(asyncio.Protocol):
    """Subclasses override `opened`, `frames_received` and optionally `closed`."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        self._request_target = (host, port, path, headers)
        self._key = base64.b64encode(os.urandom(16))
        self._handshaken = False
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.open_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.lost = False

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        host, port, path, headers = self._request_target
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        if not self._handshaken:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            rest = bytes(self._buffer[end + 4 :])
            self._buffer.clear()
            try:
                self._check_handshake(head)
            except HandshakeError as exc:
                if not self.open_future.done():
                    self.open_future.set_exception(exc)
                self.abort()
                return
            self._handshaken = True
            self.open_future.set_result(None)
            self.opened()
            if not rest:
                return
            data = rest
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.open_future.done():
            self.open_future.set_exception(ConnectionError("connection lost during handshake"))
            self.open_future.exception()  # callers wait on `subscribed`; this one is reported there
        self.closed()

    # --- framing --------------------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> None:
        status_line, _, header_block = head.partition(b"\r\n")
        if not status_line.startswith(b"HTTP/1.1 101"):
            raise HandshakeError(status_line.decode(errors="replace"))
        expected = accept_key(self._key)
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept" and value.strip() == expected:
                return
        raise HandshakeError("bad Sec-WebSocket-Accept")

    def _feed(self, data: bytes) -> None:
        buffer = self._buffer
        view: bytes | bytearray
        if buffer:
            buffer += data
            view = buffer
        else:
            view = data
        n = len(view)
        pos = 0
        control: list[tuple[int, bytes]] | None = None
        while pos + 2 <= n:
            b0 = view[pos]
            length = view[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if pos + 4 > n:
                    break
                length = (view[pos + 2] << 8) | view[pos + 3]
                head = 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode > 2 or (length == 4 and view[pos + head : end] == b"PING"):
                if control is None:
                    control = []
                control.append((opcode, bytes(view[pos + head : end])))
            pos = end
        if pos:
            self.frames_received(view, pos)
        if pos == n:
            if buffer:
                buffer.clear()
        elif buffer:
            del buffer[:pos]
        else:
            buffer += view[pos:]
        if control:
            for opcode, payload in control:
                self._control(opcode, payload)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:  # tRPC keep-alive: a text PING wants a text PONG
            self.send_text(b"PONG")
        elif opcode == OP_PING:
            self._write(encode_frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._write(encode_frame(payload[:2], OP_CLOSE))
            if self.transport is not None:
                self.transport.close()

    # --- sending --------------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def send_text(self, payload: bytes) -> None:
        self._write(encode_frame(payload))

    def close(self, code: int = 1000) -> None:
        self._write(encode_frame(code.to_bytes(2, "big"), OP_CLOSE))
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- hooks ----------------------------------------------------------------------------

    def opened(self) -> None:
        """The handshake succeeded."""

    def frames_received(self, view: bytes | bytearray, end: int) -> None:
        """`view[:end]` holds one or more complete frames (headers included)."""

    def closed(self) -> None:
        """The connection is gone."""


def iter_frames(view: bytes | bytearray, end: int) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete frame in `view[:end]`; for the slow paths."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while pos < end:
        length = view[pos + 1] & 0x7F
        head = 2
        if length == 126:
            length = (view[pos + 2] << 8) | view[pos + 3]
            head = 4
        elif length == 127:
            length = int.from_bytes(view[pos + 2 : pos + 10], "big")
            head = 10
        frames.append((view[pos] & 0x0F, bytes(view[pos + head : pos + head + length])))
        pos += head + length
    return frames
