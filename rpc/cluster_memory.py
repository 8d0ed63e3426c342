"""The in-memory cluster state: one process without REDIS_URL.

A `MemoryHub` is what several nodes would share; each process has one of its own. Tests attach
several nodes to one hub to run cluster scenarios (and the contract suite) without Redis. The
hub delivers synchronously, which is a stricter ordering than Redis gives: callers must not
rely on it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from rpc.cluster import (
    ClusterMessage,
    ConnectionEntry,
    ConnectionView,
    Handlers,
    M,
    Unsubscribe,
    ViewReads,
    encode_message,
)

PURGE_EVERY = 1024  # expired keys are dropped on access, and swept every so many writes


def default_node_id() -> str:
    """NODE_ID's default: the host and the process, unique among the nodes of one machine."""
    return f"{socket.gethostname()}-{os.getpid()}"


class MemoryHub:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.nodes: dict[str, InMemoryClusterState] = {}
        self.keys: dict[str, tuple[str, float]] = {}  # key -> (value, deadline)
        self._writes = 0

    def attach(self, node: InMemoryClusterState) -> None:
        if node.node_id in self.nodes:
            raise ValueError(f"a node named {node.node_id!r} is already attached")
        self.nodes[node.node_id] = node
        for other in self.nodes.values():
            if other is not node:
                node.view.replace_node(other.node_id, other.view.entries(other.node_id))

    def detach(self, node: InMemoryClusterState) -> None:
        if self.nodes.get(node.node_id) is not node:
            return
        del self.nodes[node.node_id]
        for other in self.nodes.values():
            other.view.drop_node(node.node_id)

    def live(self, key: str) -> str | None:
        held = self.keys.get(key)
        if held is None:
            return None
        if held[1] <= self.clock():
            del self.keys[key]
            return None
        return held[0]

    def put(self, key: str, value: str, ttl_s: float) -> None:
        self.keys[key] = (value, self.clock() + ttl_s)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            now = self.clock()
            for stale in [k for k, (_v, deadline) in self.keys.items() if deadline <= now]:
                del self.keys[stale]


class InMemoryClusterState(ViewReads):
    def __init__(self, node_id: str | None = None, hub: MemoryHub | None = None) -> None:
        self._node_id = node_id or default_node_id()
        self.hub = hub if hub is not None else MemoryHub()
        self.view = ConnectionView()
        self._handlers = Handlers()
        self.hub.attach(self)

    @property
    def node_id(self) -> str:
        return self._node_id

    async def start(self) -> None:
        if self.hub.nodes.get(self._node_id) is not self:
            self.hub.attach(self)  # started again after close

    async def close(self) -> None:
        self.hub.detach(self)

    # --- live connections --------------------------------------------------------------------

    def connection_opened(self, conn_id: str, entry: ConnectionEntry) -> None:
        for node in self._reached():
            node.view.put(self._node_id, conn_id, entry)

    def connection_closed(self, conn_id: str) -> None:
        for node in self._reached():
            node.view.drop(self._node_id, conn_id)

    def _reached(self) -> list[InMemoryClusterState]:
        if self.hub.nodes.get(self._node_id) is not self:
            return [self]  # closed: only its own view still counts its sockets
        return list(self.hub.nodes.values())

    # --- broadcast ---------------------------------------------------------------------------

    async def publish(self, message: ClusterMessage) -> bool:
        kind, payload = encode_message(message)
        for node in self._reached():
            node._handlers.deliver(kind, payload)
        return True

    def on_message(self, kind: type[M], handler: Callable[[M], None]) -> Unsubscribe:
        return self._handlers.add(kind, handler)

    # --- short-lived shared keys -------------------------------------------------------------

    async def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool:
        if self.hub.live(key) is not None:
            return False
        self.hub.put(key, value, ttl_s)
        return True

    async def get(self, key: str) -> str | None:
        return self.hub.live(key)

    async def refresh(self, key: str, value: str, ttl_s: float) -> bool:
        if self.hub.live(key) != value:
            return False
        self.hub.put(key, value, ttl_s)
        return True

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        held = self.hub.live(key)
        if held is None or (if_value is not None and held != if_value):
            return False
        del self.hub.keys[key]
        return True

    async def health(self) -> dict[str, object]:
        return {"node": self._node_id}
