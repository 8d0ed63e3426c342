"""The cluster state in Redis (REDIS_URL): the `rpc.cluster.ClusterState` of a node among many.

Every key and channel is under `<ALERTWIRE_CLUSTER>:`, so clusters (and test runs) share one
Redis. Connections are replicated as services.cluster_replica describes; broadcasts go over the
`broadcast` channel as `{"n": node, "k": kind, "p": payload}`; shared keys are `kv:<key>`.

Redis is a convenience here, never a dependency of serving: when it is down each node goes on
serving its own clients, its counts being its own connections plus the others' last known,
`/health` says `"bus": "degraded"`, and when Redis is back the node subscribes again,
rewrites its own state and reads everyone else's, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from rpc.cluster import (
    ClusterMessage,
    ClusterUnavailable,
    ConnectionEntry,
    ConnectionView,
    Handlers,
    M,
    Unsubscribe,
    ViewReads,
    encode_message,
)
from services.cluster_replica import ConnectionReplica, Keys

log = logging.getLogger("alertwire.cluster")

RETRY_S = 0.5  # how often a node tries Redis again while it is down
START_WAIT_S = 3.0  # how long start() waits for a first view of the cluster
CLOSE_WAIT_S = 2.0
# Compare-and-set for leases: act only while the key still holds the caller's value.
REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then "
REFRESH += "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then "
DELETE_IF += "return redis.call('del', KEYS[1]) else return 0 end"
FAILURES = (RedisError, OSError, TimeoutError)


def connect(url: str) -> Redis:
    """A client that fails fast: the node decides when to try again, not the client."""
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=5,
        retry=Retry(NoBackoff(), 0),
    )
    return client


class RedisClusterState(ViewReads):
    def __init__(
        self,
        url: str,
        node_id: str,
        cluster: str = "alertwire",
        *,
        ttl_s: float = 6.0,
        check_s: float = 2.0,
    ) -> None:
        self._node_id = node_id
        self.keys = Keys(cluster, node_id)
        self.redis = connect(url)
        self.view = ConnectionView()
        self.replica = ConnectionReplica(self.redis, self.keys, self.view, ttl_s, check_s)
        self._handlers = Handlers()
        self._subscribed = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def node_id(self) -> str:
        return self._node_id

    async def start(self) -> None:
        replica = self.replica
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="cluster-listen"),
            asyncio.create_task(replica.run_writer(RETRY_S), name="cluster-write"),
            asyncio.create_task(replica.run_checker(RETRY_S), name="cluster-check"),
        ]
        first_view = asyncio.gather(replica.checked.wait(), replica.written.wait())
        try:
            await asyncio.wait_for(first_view, START_WAIT_S)
        except TimeoutError:
            log.warning("Redis is not reachable: serving this node's clients until it is")

    async def close(self, *, leave: bool = True) -> None:
        """Stop; with `leave`, take this node's connections out of every view at once
        (`leave=False` stops as a killed node would, for tests)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if leave:
            with contextlib.suppress(*FAILURES):
                await asyncio.wait_for(self.replica.leave(), CLOSE_WAIT_S)
        await self.redis.aclose()

    # --- live connections --------------------------------------------------------------------

    def connection_opened(self, conn_id: str, entry: ConnectionEntry) -> None:
        self.view.put(self._node_id, conn_id, entry)
        self.replica.changed(conn_id, entry)

    def connection_closed(self, conn_id: str) -> None:
        self.view.drop(self._node_id, conn_id)
        self.replica.changed(conn_id, None)

    # --- broadcast ---------------------------------------------------------------------------

    async def publish(self, message: ClusterMessage) -> bool:
        kind, payload = encode_message(message)
        self._handlers.deliver(kind, payload)
        envelope = orjson.dumps({"n": self._node_id, "k": kind, "p": payload})
        try:
            await self.redis.publish(self.keys.broadcast, envelope)
        except FAILURES:
            return False
        return True

    def on_message(self, kind: type[M], handler: Callable[[M], None]) -> Unsubscribe:
        return self._handlers.add(kind, handler)

    def _heard_broadcast(self, raw: bytes) -> None:
        try:
            envelope = orjson.loads(raw)
            node, kind, payload = envelope["n"], envelope["k"], envelope["p"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if node != self._node_id and isinstance(kind, str):
            self._handlers.deliver(kind, payload)

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.connections, self.keys.broadcast)
                self._subscribed = True
                self.replica.reconnected()
                await self._listen(pubsub)
            except FAILURES as exc:
                if self._subscribed:
                    log.warning("cluster state: lost Redis (%s)", type(exc).__name__)
            finally:
                self._subscribed = False
                with contextlib.suppress(*FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_S)  # Redis is down: retry at a bounded pace

    async def _listen(self, pubsub: PubSub) -> None:
        connections = self.keys.connections.encode()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            if message["channel"] == connections:
                self.replica.heard(message["data"])
            else:
                self._heard_broadcast(message["data"])

    # --- short-lived shared keys -------------------------------------------------------------

    async def set_if_absent(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(
            await self._ask(self.redis.set(self.keys.kv(key), value, nx=True, px=_ms(ttl_s)))
        )

    async def get(self, key: str) -> str | None:
        raw = await self._ask(self.redis.get(self.keys.kv(key)))
        return raw.decode() if isinstance(raw, bytes) else None

    async def refresh(self, key: str, value: str, ttl_s: float) -> bool:
        script = self.redis.eval(REFRESH, 1, self.keys.kv(key), value, str(_ms(ttl_s)))
        return bool(await self._ask(script))

    async def delete(self, key: str, *, if_value: str | None = None) -> bool:
        if if_value is None:
            return bool(await self._ask(self.redis.delete(self.keys.kv(key))))
        return bool(await self._ask(self.redis.eval(DELETE_IF, 1, self.keys.kv(key), if_value)))

    async def _ask(self, call: Any) -> Any:
        try:
            return await call
        except FAILURES as exc:
            raise ClusterUnavailable(f"Redis is not reachable ({type(exc).__name__})") from None

    async def health(self) -> dict[str, object]:
        up = self._subscribed and self.replica.writer_ok
        return {"node": self._node_id, "bus": "ok" if up else "degraded"}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
