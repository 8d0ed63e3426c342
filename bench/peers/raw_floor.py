"""The machine's floor for fan-out: no framework and no event loop, for bench_fanout --compare.

One thread, `selectors` (epoll) and non-blocking sockets. It speaks just enough WebSocket and
JSON-RPC for the load generator and the publisher (like `bare_aiohttp`): a subscription adds
the socket to its hospital's list; `healthcare.createAlert` builds the event frame once and
hands those bytes to `socket.send` for every subscriber in a plain loop (a socket that cannot
take them at once keeps the rest in its own buffer until it is writable), then replies. What it
costs per subscriber is close to what the kernel charges for one send on loopback, which is
what any Python server pays at least: its latency at a fixed rate is the floor for all of them.

    python -m bench.peers.raw_floor [--port 0]

The first stdout line is "listening on http://HOST:PORT".
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
from collections import defaultdict
from types import FrameType
from typing import Any

import orjson

from bench.events import alert_event, notification
from bench.wsclient import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_key,
    apply_mask,
    encode_frame,
)



def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked, final server frame."""
    return encode_frame(payload, opcode, masked=False)


class Conn:
    __slots__ = ("inbox", "open", "outbox", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.open = False  # handshake done
        self.writing = False  # registered for EVENT_WRITE


class Floor:
    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        self.subscribers: defaultdict[str, list[Conn]] = defaultdict(list)
        self.seq = 0

    def send(self, conn: Conn, data: bytes) -> None:
        if not conn.outbox:
            try:
                sent = conn.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return
            if sent == len(data):
                return
            data = data[sent:]
        conn.outbox += data
        if not conn.writing:
            conn.writing = True
            self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def writable(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbox)
        except BlockingIOError:
            return
        except OSError:
            self.drop(conn)
            return
        del conn.outbox[:sent]
        if not conn.outbox:
            conn.writing = False
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        conn.inbox += data
        if not conn.open:
            end = conn.inbox.find(b"\r\n\r\n")
            if end < 0:
                return
            self.handshake(conn, bytes(conn.inbox[:end]))
            del conn.inbox[: end + 4]
        self.frames(conn)

    def handshake(self, conn: Conn, head: bytes) -> None:
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = accept_key(key)
        conn.open = True
        self.send(
            conn,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n",
        )

    def frames(self, conn: Conn) -> None:
        buf = conn.inbox
        while len(buf) >= 6:  # client frames are masked: 2 + 4 bytes at least
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                length, head = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buf[2:10], "big"), 10
            end = head + 4 + length
            if len(buf) < end:
                return
            opcode = buf[0] & 0x0F
            payload = apply_mask(bytes(buf[head : head + 4]), bytes(buf[head + 4 : end]))
            del buf[:end]
            if opcode == OP_TEXT:
                self.call(conn, payload)
            elif opcode == OP_PING:
                self.send(conn, frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self.send(conn, frame(payload[:2], OP_CLOSE))
                self.drop(conn)
                return

    def call(self, conn: Conn, payload: bytes) -> None:
        try:
            request = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        method, params = request.get("method"), request.get("params") or {}
        result: Any
        if method == "healthcare.subscribeToAlerts":
            self.subscribers[params["hospitalId"]].append(conn)
            result = {"subscription": "s1"}
        elif method == "healthcare.createAlert":
            result = self.publish(params)
        else:
            error = {"code": -32601, "message": "Method not found"}
            reply = {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
            self.send(conn, frame(orjson.dumps(reply)))
            return
        reply = {"jsonrpc": "2.0", "result": result, "id": request.get("id")}
        self.send(conn, frame(orjson.dumps(reply)))

    def publish(self, params: dict[str, Any]) -> Any:
        self.seq += 1
        event = alert_event(self.seq, params)
        data = frame(notification(event))
        send = self.send
        for conn in self.subscribers[params["hospitalId"]]:
            send(conn, data)
        return event["alert"]

    def drop(self, conn: Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        for subs in self.subscribers.values():
            if conn in subs:
                subs.remove(conn)
        conn.sock.close()


def serve(port: int) -> None:
    sel = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    floor = Floor(sel)
    print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        for key, mask in sel.select(timeout=0.5):
            conn: Conn | None = key.data
            if conn is None:
                with contextlib.suppress(BlockingIOError):
                    sock, _ = listener.accept()
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(sock, selectors.EVENT_READ, Conn(sock))
                continue
            if mask & selectors.EVENT_WRITE:
                floor.writable(conn)
            if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                floor.readable(conn)
    listener.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    cli()
