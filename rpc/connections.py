"""Live authenticated connections: who is online, for presence, `staffOnline` and the per-user
connection cap.

Transports call `add`/`update`/`remove` for this node's connections; the cluster state
(rpc.cluster) shares them with every node and answers the counts for the whole cluster from
its local replica, so reads never wait on the network. Listeners are called synchronously on
every change of any node (they must not block; schedule work instead).
"""

from __future__ import annotations

from collections.abc import Callable

from rpc.cluster import ClusterState, ConnectionEntry, PresenceListener
from rpc.cluster_memory import InMemoryClusterState
from rpc.context import Principal

Listener = PresenceListener  # receives the hospitals whose presence changed


class ConnectionRegistry:
    def __init__(self, cluster: ClusterState | None = None) -> None:
        self.cluster: ClusterState = cluster if cluster is not None else InMemoryClusterState()
        self._local: dict[str, ConnectionEntry] = {}

    def __len__(self) -> int:
        """This node's connections (MAX_CONNECTIONS is a node's capacity)."""
        return len(self._local)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.cluster.on_presence(listener)

    def add(self, conn_id: str, principal: Principal) -> None:
        entry = ConnectionEntry.of(principal)
        if self._local.get(conn_id) == entry:
            return  # a refreshed token of the same identity: nothing the cluster sees changed
        self._local[conn_id] = entry
        self.cluster.connection_opened(conn_id, entry)

    update = add

    def remove(self, conn_id: str) -> None:
        if self._local.pop(conn_id, None) is not None:
            self.cluster.connection_closed(conn_id)

    def connections_of(self, sub: str) -> int:
        """The user's live connections on every node."""
        return self.cluster.connections_of(sub)

    def online_subjects(self, hospital_id: str) -> int:
        """Distinct staff (not service accounts) with a live connection that may see it, on
        any node."""
        return self.cluster.online_subjects(hospital_id)
