"""Cluster state: what every node must see at once, behind one seam (DESIGN.md).

`ClusterState` has three parts:

- **Live connections** of every node (user id, role, hospitals; never a token), for
  `staffOnline`, presence and MAX_CONNECTIONS_PER_USER. Reads (`connections_of`,
  `online_subjects`) answer from a replica the node keeps in memory (`ConnectionView`), so
  they never wait on the network; changes reach the listeners of `on_presence` whichever node
  made them.
- **Broadcast**: `publish(message)` runs the handlers registered for the message's kind on
  every node once, the publisher's included (token and key revocations, admin disconnects,
  presence). Messages are small pydantic models, `ClusterMessage` subclasses naming a `kind`;
  a node ignores kinds it has no handler for (a newer node's, during a rolling upgrade).
- **Short-lived shared keys** with a TTL: leases (`set_if_absent`, `refresh`, `delete` with
  `if_value`) and idempotency-like markers. These raise `ClusterUnavailable` when the cluster
  cannot be asked: there is no safe local answer to "did another node take this lease?".

Implementations: `rpc.cluster_memory` (one process, or several nodes in one process for
tests) and `services.cluster_redis` (REDIS_URL). One contract suite runs on both
(tests/services/test_cluster_contract.py).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from rpc.context import Principal

log = logging.getLogger("alertwire.cluster")

NON_STAFF_ROLES = frozenset({"service"})
MAX_MESSAGE_BYTES = 64 * 1024  # a broadcast wakes every node: keep it a notice, not a load

PresenceListener = Callable[[frozenset[str]], None]  # receives the hospitals that changed
# (node, connection id, entry, +1 opened / -1 closed): one connection of any node.
ConnectionListener = Callable[[str, str, "ConnectionEntry", int], None]
Unsubscribe = Callable[[], None]


class ClusterUnavailable(Exception):
    """The shared state cannot be reached now (Redis down); the caller decides what to do."""


class ClusterMessage(BaseModel):
    """A notice for every node. Subclasses set `kind` (e.g. "tokens.revoked") and fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    kind: ClassVar[str]


M = TypeVar("M", bound=ClusterMessage)


@dataclass(frozen=True, slots=True)
class ConnectionEntry:
    """One live authenticated connection as every node sees it."""

    sub: str
    role: str
    hospitals: frozenset[str]
    name: str | None = None  # the token's display name, when it has one (presence shows it)

    @classmethod
    def of(cls, principal: Principal) -> ConnectionEntry:
        return cls(principal.sub, principal.role, principal.hospitals, principal.name)

    @property
    def staff(self) -> bool:
        return self.role not in NON_STAFF_ROLES

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"s": self.sub, "r": self.role, "h": sorted(self.hospitals)}
        if self.name is not None:
            raw["n"] = self.name
        return raw

    @classmethod
    def from_json(cls, raw: Any) -> ConnectionEntry | None:
        """None for anything malformed (a foreign or corrupted value is skipped, not fatal)."""
        if not isinstance(raw, dict):
            return None
        sub, role, hospitals = raw.get("s"), raw.get("r"), raw.get("h")
        if not (isinstance(sub, str) and isinstance(role, str) and isinstance(hospitals, list)):
            return None
        if not all(isinstance(h, str) for h in hospitals):
            return None
        name = raw.get("n")
        return cls(
            sub,
            sys.intern(role),
            shared_hospitals(frozenset(hospitals)),
            name if isinstance(name, str) else None,
        )


# Every node keeps an entry for every connection of the cluster, and most of them name the
# same few sets of hospitals: one frozenset per distinct set instead of one per entry (about
# 200 bytes each). The sets come from tokens this cluster signed, so they are few; the table
# stops growing at a bound all the same.
_HOSPITAL_SETS: dict[frozenset[str], frozenset[str]] = {}
_HOSPITAL_SETS_MAX = 10_000


def shared_hospitals(hospitals: frozenset[str]) -> frozenset[str]:
    """An equal frozenset, the same object for every caller (while the table has room)."""
    found = _HOSPITAL_SETS.get(hospitals)
    if found is not None:
        return found
    if len(_HOSPITAL_SETS) < _HOSPITAL_SETS_MAX:
        _HOSPITAL_SETS[hospitals] = hospitals
    return hospitals


class ClusterState(Protocol):
    @property
    def node_id(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Leave the cluster: this node's connections disappear from every view at once."""

    # --- live connections (reads are local and immediate) ------------------------------------
    def connection_opened(self, conn_id: str, entry: ConnectionEntry) -> None: ...

    def connection_closed(self, conn_id: str) -> None: ...

    def connections_of(self, sub: str) -> int: ...

    def online_subjects(self, hospital_id: str) -> int: ...

    def node_connections(self) -> dict[str, int]: ...

    def node_entries(self, node: str) -> dict[str, ConnectionEntry]: ...

    def on_presence(self, listener: PresenceListener) -> Unsubscribe: ...

    def on_connection(self, listener: ConnectionListener) -> Unsubscribe:
        """Hear each connection of any node open and close (presence keeps users from it)."""

    def connection_entries(self) -> list[tuple[str, str, ConnectionEntry]]:
        """(node, connection id, entry) of every live connection the view holds now."""

    # --- broadcast ---------------------------------------------------------------------------
    async def publish(self, message: ClusterMessage) -> bool:
        """Run the handlers of `message.kind` here at once and on every other node; False when
        the other nodes could not be reached (this node's handlers ran anyway)."""

    def on_message(self, kind: type[M], handler: Callable[[M], None]) -> Unsubscribe: ...

    # --- short-lived shared keys -------------------------------------------------------------
    async def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool: ...

    async def get(self, key: str) -> str | None: ...

    async def refresh(self, key: str, value: str, ttl_s: float) -> bool:
        """Extend the key's TTL if it still holds `value` (a lease still ours)."""

    async def delete(self, key: str, *, if_value: str | None = None) -> bool: ...

    async def health(self) -> dict[str, object]: ...


class Handlers:
    """Broadcast handlers by kind; decodes each payload with the handler's message class."""

    def __init__(self) -> None:
        self._by_kind: dict[str, list[tuple[type[ClusterMessage], Callable[[Any], None]]]] = {}

    def add(self, kind: type[M], handler: Callable[[M], None]) -> Unsubscribe:
        entry: tuple[type[ClusterMessage], Callable[[Any], None]] = (kind, handler)
        self._by_kind.setdefault(kind.kind, []).append(entry)
        return lambda: self._by_kind.get(kind.kind, []).remove(entry)

    def deliver(self, kind: str, payload: Any) -> None:
        for cls, handler in tuple(self._by_kind.get(kind, ())):
            try:
                message = cls.model_validate(payload)
            except ValidationError:
                log.warning("cluster message of kind %r with a malformed payload ignored", kind)
                continue
            try:
                handler(message)
            except Exception:  # one failing handler must not starve the others
                log.exception("cluster message handler for %r failed", kind)


def encode_message(message: ClusterMessage) -> tuple[str, dict[str, Any]]:
    payload = message.model_dump(mode="json")
    if len(orjson.dumps(payload)) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a cluster message is at most {MAX_MESSAGE_BYTES} bytes")
    return message.kind, payload


class ConnectionView:
    """Every node's live connections, and the counts read on hot paths (kept incrementally)."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, ConnectionEntry]] = {}
        self._per_user: Counter[str] = Counter()
        self._pairs: Counter[tuple[str, str]] = Counter()  # (hospital, staff sub) -> conns
        self._staff: Counter[str] = Counter()  # hospital -> distinct staff online
        self._listeners: list[PresenceListener] = []
        self._connection_listeners: list[ConnectionListener] = []

    def subscribe(self, listener: PresenceListener) -> Unsubscribe:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def subscribe_connections(self, listener: ConnectionListener) -> Unsubscribe:
        self._connection_listeners.append(listener)
        return lambda: self._connection_listeners.remove(listener)

    def all_entries(self) -> list[tuple[str, str, ConnectionEntry]]:
        return [
            (node, conn_id, entry)
            for node, conns in self._nodes.items()
            for conn_id, entry in conns.items()
        ]

    def connections_of(self, sub: str) -> int:
        return self._per_user.get(sub, 0)

    def online_subjects(self, hospital_id: str) -> int:
        return self._staff.get(hospital_id, 0)

    def node_connections(self) -> dict[str, int]:
        return {node: len(conns) for node, conns in self._nodes.items() if conns}

    def nodes(self) -> frozenset[str]:
        return frozenset(self._nodes)

    def count(self, node: str) -> int:
        return len(self._nodes.get(node, ()))

    def entries(self, node: str) -> dict[str, ConnectionEntry]:
        return dict(self._nodes.get(node, {}))

    def put(self, node: str, conn_id: str, entry: ConnectionEntry) -> None:
        self._notify(self._put(node, conn_id, entry))

    def drop(self, node: str, conn_id: str) -> None:
        self._notify(self._drop(node, conn_id))

    def drop_node(self, node: str) -> None:
        self.replace_node(node, {})
        self._nodes.pop(node, None)

    def replace_node(self, node: str, entries: Mapping[str, ConnectionEntry]) -> None:
        """Make `node`'s connections exactly `entries` (a snapshot read from the cluster)."""
        current = self._nodes.get(node, {})
        changed: set[str] = set()
        for conn_id in [c for c in current if c not in entries]:
            changed |= self._drop(node, conn_id)
        for conn_id, entry in entries.items():
            changed |= self._put(node, conn_id, entry)
        self._notify(frozenset(changed))

    def _put(self, node: str, conn_id: str, entry: ConnectionEntry) -> frozenset[str]:
        conns = self._nodes.setdefault(node, {})
        old = conns.get(conn_id)
        if old == entry:
            return frozenset()
        changed = self._drop(node, conn_id) if old is not None else frozenset()
        conns[conn_id] = entry
        self._count(entry, +1)
        self._tell(node, conn_id, entry, +1)
        return changed | entry.hospitals

    def _drop(self, node: str, conn_id: str) -> frozenset[str]:
        entry = self._nodes.get(node, {}).pop(conn_id, None)
        if entry is None:
            return frozenset()
        self._count(entry, -1)
        self._tell(node, conn_id, entry, -1)
        return entry.hospitals

    def _tell(self, node: str, conn_id: str, entry: ConnectionEntry, step: int) -> None:
        for listener in tuple(self._connection_listeners):
            listener(node, conn_id, entry, step)

    def _count(self, entry: ConnectionEntry, step: int) -> None:
        self._per_user[entry.sub] += step
        if self._per_user[entry.sub] <= 0:
            del self._per_user[entry.sub]
        if not entry.staff:
            return
        for hospital in entry.hospitals:
            pair = (hospital, entry.sub)
            before = self._pairs[pair]
            self._pairs[pair] += step
            if step > 0 and before == 0:
                self._staff[hospital] += 1
            elif self._pairs[pair] <= 0:
                del self._pairs[pair]
                self._staff[hospital] -= 1
                if self._staff[hospital] <= 0:
                    del self._staff[hospital]

    def _notify(self, hospitals: frozenset[str]) -> None:
        if not hospitals:
            return
        for listener in tuple(self._listeners):
            listener(hospitals)


class ViewReads:
    """The ClusterState reads every implementation answers from its local `view` (never
    waiting on a shared store): one definition for both."""

    view: ConnectionView

    def connections_of(self, sub: str) -> int:
        return self.view.connections_of(sub)

    def online_subjects(self, hospital_id: str) -> int:
        return self.view.online_subjects(hospital_id)

    def node_connections(self) -> dict[str, int]:
        return self.view.node_connections()

    def node_entries(self, node: str) -> dict[str, ConnectionEntry]:
        """A node's live connections by id (admin.stats, for a node that does not answer)."""
        return self.view.entries(node)

    def on_presence(self, listener: PresenceListener) -> Unsubscribe:
        return self.view.subscribe(listener)

    def on_connection(self, listener: ConnectionListener) -> Unsubscribe:
        return self.view.subscribe_connections(listener)

    def connection_entries(self) -> list[tuple[str, str, ConnectionEntry]]:
        return self.view.all_entries()
