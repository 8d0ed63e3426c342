"""What the admin procedures make every node do (CONTRACT 11), through the cluster broadcast.

`admin.disconnect` and `admin.revokeTokens` publish a message; every node (the publisher's
included) closes its own sessions that match, with 4001. `admin.stats` needs numbers only each
node has (its subscriptions by kind), so it is a question and answers: the asking node
publishes `StatsRequested` with a fresh id, each node writes its figures under a short-lived
shared key named by that id and its node id, and the asker reads the keys of the nodes its
connection view knows of until all have answered or a second has passed (services/admin.py).
Answers are computed on demand, so they are as fresh as the question; nothing is kept up to
date between questions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from rpc.cluster import ClusterMessage, ClusterState, ClusterUnavailable, Unsubscribe
from rpc.context import Principal
from rpc.metrics import Metrics
from rpc.revocation import Revocations, TokensRevoked

if TYPE_CHECKING:
    from rpc.session import Session

log = logging.getLogger("alertwire.admin")

STATS_TTL_S = 30.0
DISCONNECTED = "Disconnected by an administrator"
REVOKED = "Token revoked"


class UserDisconnected(ClusterMessage):
    kind = "admin.disconnect"
    sub: str


class StatsRequested(ClusterMessage):
    kind = "admin.stats"
    request_id: str
    hospital_id: str | None = None


def stats_key(request_id: str, node: str) -> str:
    return f"admin.stats.{request_id}.{node}"


@dataclass(slots=True)
class NodeStats:
    node: str
    connections: int = 0
    users: int = 0
    subscriptions: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps(
            {"c": self.connections, "u": self.users, "s": self.subscriptions}
        ).decode()

    @classmethod
    def from_json(cls, node: str, raw: str) -> NodeStats | None:
        """None for anything malformed (another version's answer is skipped, not fatal)."""
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        conns, users, subs = value.get("c"), value.get("u"), value.get("s")
        if not (isinstance(conns, int) and isinstance(users, int) and isinstance(subs, dict)):
            return None
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in subs.items()):
            return None
        return cls(node, conns, users, dict(subs))


def local_stats(node: str, sessions: Iterable[Session], hospital_id: str | None) -> NodeStats:
    """This node's authenticated connections (WebSockets and SSE streams), distinct users and
    subscriptions by procedure path; with `hospital_id`, only connections whose token grants
    it and, of their subscriptions, those whose input names it (or names no hospital)."""
    stats = NodeStats(node)
    users: set[str] = set()
    kinds: Counter[str] = Counter()
    for session in sessions:
        principal = session.principal
        if principal is None or session.closed or session.http:
            continue
        if hospital_id is not None and not principal.can_access(hospital_id):
            continue
        stats.connections += 1
        users.add(principal.sub)
        for sub in session.subscriptions.values():
            named = getattr(sub.params, "hospital_id", None)
            if hospital_id is None or named is None or named == hospital_id:
                kinds[sub.proc.path] += 1
    stats.users = len(users)
    stats.subscriptions = dict(sorted(kinds.items()))
    return stats


class NodeControl:
    """This node's side of the admin messages: its sessions, its copy of the revocations."""

    def __init__(
        self,
        cluster: ClusterState,
        sessions: set[Session],
        revocations: Revocations,
        metrics: Metrics,
    ) -> None:
        self.cluster = cluster
        self.sessions = sessions
        self.revocations = revocations
        self.metrics = metrics
        self._handlers: list[Unsubscribe] = []
        self._answers: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        if self._handlers:
            return
        self._handlers = [
            self.cluster.on_message(TokensRevoked, self._revoked),
            self.cluster.on_message(UserDisconnected, self._disconnect),
            self.cluster.on_message(StatsRequested, self._stats),
        ]

    def detach(self) -> None:
        for unsubscribe in self._handlers:
            unsubscribe()
        self._handlers = []

    def close_where(self, matches: Callable[[Principal], bool], message: str, reason: str) -> int:
        closed = 0
        for session in list(self.sessions):
            principal = session.principal
            if principal is None or session.closed or not matches(principal):
                continue
            session.close_unauthorized(message)
            closed += 1
        if closed:
            self.metrics.admin_closes.inc(reason, closed)
        return closed

    def _revoked(self, message: TokensRevoked) -> None:
        self.revocations.apply(message)
        closed = self.close_where(self.revocations.refuses, REVOKED, "revoked")
        if closed:
            log.info("closed %d connection(s) whose token was revoked", closed)

    def _disconnect(self, message: UserDisconnected) -> None:
        closed = self.close_where(lambda p: p.sub == message.sub, DISCONNECTED, "disconnect")
        if closed:
            log.info("closed %d connection(s) of a user an admin disconnected", closed)

    def _stats(self, message: StatsRequested) -> None:
        node = self.cluster.node_id
        stats = local_stats(node, self.sessions, message.hospital_id)
        task = asyncio.get_running_loop().create_task(
            self._answer(stats_key(message.request_id, node), stats.to_json())
        )
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, key: str, value: str) -> None:
        try:
            await self.cluster.set_if_absent(key, value, STATS_TTL_S)
        except ClusterUnavailable:
            log.warning("could not answer an admin.stats request: the cluster is unreachable")
