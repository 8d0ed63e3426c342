"""The admin procedures' work (CONTRACT 11): stats of every node, disconnecting a user and
revoking tokens, everywhere at once.

A revocation is stored first (durable: it survives a restart, and a node that starts later
loads it), then broadcast: every node adds the rule to its in-memory copy (the one the token
checks read) and closes its live connections that the rule now refuses. Should the broadcast
not reach another node (Redis down), that node still learns the rule from the store on its
next reload (`RELOAD_S`, on a shared PostgreSQL store). A disconnect is only a broadcast: it
closes what is open now, and the user may sign in again (revoke the tokens to prevent that).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rpc.admin_control import NodeStats, StatsRequested, UserDisconnected, stats_key
from rpc.cluster import ClusterState, ClusterUnavailable, ConnectionEntry
from rpc.revocation import Revocations, TokensRevoked
from services.revocations import RevocationStore

log = logging.getLogger("alertwire.admin")

# How long admin.stats waits for the other nodes' answers, and how often it looks.
STATS_WAIT_S = 1.0
STATS_POLL_S = 0.02
# In a cluster, how often a node reloads the revocations from the store: the backstop for a
# broadcast it missed.
RELOAD_S = 5.0


@dataclass(frozen=True, slots=True)
class ClusterStats:
    nodes: list[NodeStats]
    users: int  # distinct across the cluster: a user connected to two nodes counts once

    @property
    def connections(self) -> int:
        return sum(n.connections for n in self.nodes)

    @property
    def subscriptions(self) -> int:
        return sum(sum(n.subscriptions.values()) for n in self.nodes)


class AdminService:
    def __init__(
        self,
        store: RevocationStore,
        cluster: ClusterState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.clock = clock
        # This node's copy of the rules, read on every token check (the transport's).
        self.revocations = Revocations()
        # Set by the composition root to the server's metrics (admin actions counted there).
        self.counted: Callable[[str], None] = lambda action: None

    async def load(self) -> None:
        self.revocations.merge(await self.store.load())

    async def reload_forever(self, every_s: float = RELOAD_S) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.load()
            except Exception:
                log.exception("reloading token revocations failed; will retry")

    async def stats(self, admin: str, hospital_id: str | None) -> ClusterStats:
        self._used("stats", admin, "asked for connection stats")
        request_id = uuid.uuid4().hex
        await self.cluster.publish(StatsRequested(request_id=request_id, hospital_id=hospital_id))
        expected = {self.cluster.node_id, *self.cluster.node_connections()}
        answers: dict[str, NodeStats] = {}
        await asyncio.sleep(0)  # this node's own answer is a task: let it run first
        deadline = time.monotonic() + STATS_WAIT_S
        while True:
            for node in sorted(expected - answers.keys()):
                try:
                    raw = await self.cluster.get(stats_key(request_id, node))
                except ClusterUnavailable:
                    raw = None
                found = NodeStats.from_json(node, raw) if raw is not None else None
                if found is not None:
                    answers[node] = found
            if answers.keys() >= expected or time.monotonic() >= deadline:
                break
            await asyncio.sleep(STATS_POLL_S)
        for node in expected - answers.keys():
            # Silent (busy, or an older version): what every node's view says of it.
            answers[node] = self._from_view(node, hospital_id)
        users = {e.sub for node in answers for e in self._entries(node, hospital_id)}
        return ClusterStats([answers[node] for node in sorted(answers)], len(users))

    def _entries(self, node: str, hospital_id: str | None) -> list[ConnectionEntry]:
        return [
            e
            for e in self.cluster.node_entries(node).values()
            if hospital_id is None or hospital_id in e.hospitals
        ]

    def _from_view(self, node: str, hospital_id: str | None) -> NodeStats:
        entries = self._entries(node, hospital_id)
        return NodeStats(node, len(entries), len({e.sub for e in entries}), {})

    async def disconnect(self, admin: str, sub: str) -> int:
        """Close `sub`'s connections on every node; how many there were (the cluster's view,
        read just before)."""
        self._used("disconnect", admin, "disconnected a user", sub)
        closed = self.cluster.connections_of(sub)
        await self.cluster.publish(UserDisconnected(sub=sub))
        return closed

    async def revoke_user(self, admin: str, sub: str, issued_before: float | None) -> None:
        before = self.clock() if issued_before is None else issued_before
        await self.store.revoke_subject(sub, before, self.clock(), admin)
        self._used("revoke_user", admin, "revoked a user's tokens", sub)
        await self._broadcast(TokensRevoked(sub=sub, issued_before=before))

    async def revoke_token(self, admin: str, jti: str) -> None:
        await self.store.revoke_token(jti, self.clock(), admin)
        self._used("revoke_token", admin, "revoked one token")
        await self._broadcast(TokensRevoked(jti=jti))

    async def _broadcast(self, message: TokensRevoked) -> None:
        self.revocations.apply(message)  # here at once, whatever the broadcast does
        if not await self.cluster.publish(message):
            log.warning(
                "a token revocation did not reach the other nodes now; they load it from the "
                "store within %.0f s",
                RELOAD_S,
            )

    def _used(self, action: str, admin: str, what: str, sub: str | None = None) -> None:
        """Every admin action is logged with the admin's sub (and the user's it acts on)."""
        self.counted(action)
        if sub is None:
            log.info("admin %s %s", admin, what, extra={"admin": admin, "action": action})
        else:
            log.info(
                "admin %s %s: %s",
                admin,
                what,
                sub,
                extra={"admin": admin, "action": action, "target": sub},
            )
