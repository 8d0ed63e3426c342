"""Every node's live connections, replicated through Redis (used by services.cluster_redis).

In Redis (all under `<cluster>:`):
- `conns:<node>`: a hash, connection id -> `{"s": sub, "r": role, "h": [hospitals]}`;
- `node:<node>`: the node's version, `<epoch>:<counter>`, bumped by every write;
- `nodes`: the set of node names, for discovery;
- channel `connections`: each write's delta, `{"n", "v", "set", "del"}`, or `"full": true`
  after a rewrite, or `"left": true` when a node closes.
The hash and the version key expire `ttl_s` after the node's last heartbeat, so a node that
died (SIGKILL, power) drops out of every view within `ttl_s + check_s`.

Each write is one MULTI (hash change, version, PUBLISH), so a delta and the state it leads to
are never seen apart. A node applies the deltas it hears and, every `check_s`, compares each
node's version with the last one it applied: a missed delta (pub/sub is at-most-once), a
reconnect or a flush shows up as a mismatch and that node's hash is read again, deltas heard
meanwhile replayed on top. Writes that fail (Redis down) are not retried one by one: the node
rewrites its whole state once Redis answers again, which also covers a flushed Redis (the
heartbeat compares the hash's length with the node's own count).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from rpc.cluster import ConnectionEntry, ConnectionView

log = logging.getLogger("alertwire.cluster")

Version = tuple[str, int]  # (epoch: one per process start, counter)


@dataclass(frozen=True)
class Keys:
    cluster: str
    node: str

    @property
    def nodes(self) -> str:
        return f"{self.cluster}:nodes"

    def version(self, node: str) -> str:
        return f"{self.cluster}:node:{node}"

    def conns(self, node: str) -> str:
        return f"{self.cluster}:conns:{node}"

    @property
    def connections(self) -> str:
        return f"{self.cluster}:connections"

    @property
    def broadcast(self) -> str:
        return f"{self.cluster}:broadcast"

    def kv(self, key: str) -> str:
        return f"{self.cluster}:kv:{key}"


def parse_version(raw: Any) -> Version | None:
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    if not isinstance(raw, str):
        return None
    epoch, _, counter = raw.rpartition(":")
    return (epoch, int(counter)) if counter.isdigit() else None


def decode_entries(raw: dict[bytes, bytes]) -> dict[str, ConnectionEntry]:
    entries = {}
    for conn_id, value in raw.items():
        try:
            entry = ConnectionEntry.from_json(orjson.loads(value))
        except orjson.JSONDecodeError:
            entry = None
        if entry is not None:
            entries[conn_id.decode(errors="replace")] = entry
    return entries


class ConnectionReplica:
    """This node's connections out to Redis (`run_writer`), the others' in (`apply`,
    `run_checker`)."""

    def __init__(
        self, redis: Redis, keys: Keys, view: ConnectionView, ttl_s: float, check_s: float
    ) -> None:
        self.redis, self.keys, self.view = redis, keys, view
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.heartbeat_s = ttl_s / 3  # two heartbeats may be lost before the node expires
        self.check_s = check_s
        self.epoch, self.counter = secrets.token_hex(4), 0
        self.pending: dict[str, ConnectionEntry | None] = {}
        self.resync = True  # the first write is a whole one
        self.writer_ok = False
        self.wake_writer, self.wake_checker = asyncio.Event(), asyncio.Event()
        self.checked = asyncio.Event()  # set after the first successful check
        self.written = asyncio.Event()  # set after the first successful write
        self.seen: dict[str, Version] = {}  # the last version of each node applied here
        self.reading: dict[str, list[dict[str, Any]]] = {}  # deltas heard during a read
        self._beat_at = 0.0

    # --- this node's side --------------------------------------------------------------------

    def changed(self, conn_id: str, entry: ConnectionEntry | None) -> None:
        self.pending[conn_id] = entry
        self.wake_writer.set()

    def reconnected(self) -> None:
        """Pub/sub (re)subscribed: deltas may have been missed both ways."""
        self.resync = True
        self.seen.clear()
        self.wake_writer.set()
        self.wake_checker.set()

    async def run_writer(self, retry_s: float) -> None:
        while True:
            await _woken(self.wake_writer, self.heartbeat_s)
            try:
                await self.write_once()
                self.writer_ok = True
                self.written.set()
            except Exception as exc:
                if self.writer_ok:
                    log.warning("cluster state: cannot write to Redis (%s)", type(exc).__name__)
                self.writer_ok, self.resync = False, True
                await asyncio.sleep(retry_s)  # Redis is down: retry at a bounded pace

    async def write_once(self) -> None:
        if self.resync:
            await self._write_full()
        elif self.pending:
            await self._write_delta()
        if time.monotonic() - self._beat_at >= self.heartbeat_s:
            await self._heartbeat()

    def _next_version(self) -> str:
        self.counter += 1
        return f"{self.epoch}:{self.counter}"

    async def _write_full(self) -> None:
        self.resync = False
        self.pending.clear()
        entries = self.view.entries(self.keys.node)
        version, conns = self._next_version(), self.keys.conns(self.keys.node)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(conns)
            if entries:
                pipe.hset(conns, mapping={c: orjson.dumps(e.to_json()) for c, e in entries.items()})
                pipe.pexpire(conns, self.ttl_ms)
            pipe.set(self.keys.version(self.keys.node), version, px=self.ttl_ms)
            pipe.sadd(self.keys.nodes, self.keys.node)
            pipe.publish(self.keys.connections, self._notice(version, {"full": True}))
            await pipe.execute()
        self._beat_at = time.monotonic()

    async def _write_delta(self) -> None:
        changes, self.pending = self.pending, {}
        sets = {c: e.to_json() for c, e in changes.items() if e is not None}
        dels = [c for c, e in changes.items() if e is None]
        version, conns = self._next_version(), self.keys.conns(self.keys.node)
        async with self.redis.pipeline(transaction=True) as pipe:
            if sets:
                pipe.hset(conns, mapping={c: orjson.dumps(e) for c, e in sets.items()})
            if dels:
                pipe.hdel(conns, *dels)
            pipe.pexpire(conns, self.ttl_ms)
            pipe.set(self.keys.version(self.keys.node), version, px=self.ttl_ms)
            pipe.publish(self.keys.connections, self._notice(version, {"set": sets, "del": dels}))
            await pipe.execute()

    async def _heartbeat(self) -> None:
        version = f"{self.epoch}:{self.counter}"
        conns = self.keys.conns(self.keys.node)
        # What the hash must hold now; unknown while changes wait to be written.
        expected = None if self.pending else self.view.count(self.keys.node)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.version(self.keys.node), version, px=self.ttl_ms)
            pipe.sadd(self.keys.nodes, self.keys.node)
            pipe.pexpire(conns, self.ttl_ms)
            pipe.hlen(conns)
            *_, stored = await pipe.execute()
        self._beat_at = time.monotonic()
        if expected is not None and stored != expected:
            self.resync = True  # Redis lost what we wrote (flushed, restarted): write it all
            self.wake_writer.set()

    def _notice(self, version: str, fields: dict[str, Any]) -> bytes:
        return orjson.dumps({"n": self.keys.node, "v": version, **fields})

    async def leave(self) -> None:
        """Take this node's connections out of the cluster at once (graceful shutdown)."""
        node = self.keys.node
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.conns(node), self.keys.version(node))
            pipe.srem(self.keys.nodes, node)
            pipe.publish(self.keys.connections, self._notice(self._next_version(), {"left": True}))
            await pipe.execute()

    # --- the other nodes ---------------------------------------------------------------------

    def heard(self, raw: bytes) -> None:
        """A message on the connections channel."""
        try:
            message = orjson.loads(raw)
            node = message["n"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if not isinstance(node, str) or node == self.keys.node:
            return
        if node in self.reading:
            self.reading[node].append(message)
        else:
            self._apply(node, message)

    def _apply(self, node: str, message: dict[str, Any]) -> None:
        version = parse_version(message.get("v"))
        if message.get("left"):
            self.view.drop_node(node)
            self.seen.pop(node, None)
            return
        if not message.get("full"):
            for conn_id in message.get("del") or ():
                self.view.drop(node, str(conn_id))
            for conn_id, raw in (message.get("set") or {}).items():
                entry = ConnectionEntry.from_json(raw)
                if entry is not None:
                    self.view.put(node, conn_id, entry)
        before = self.seen.get(node)
        follows = before is not None and version == (before[0], before[1] + 1)
        if follows and version is not None and not message.get("full"):
            self.seen[node] = version
        else:
            self.wake_checker.set()  # a gap, a rewrite or a new node: read its hash

    async def run_checker(self, retry_s: float) -> None:
        while True:
            await _woken(self.wake_checker, self.check_s)
            try:
                await self.check()
                self.checked.set()
            except Exception as exc:
                log.debug("cluster state: check failed (%s)", type(exc).__name__)
                await asyncio.sleep(retry_s)

    async def check(self) -> None:
        """Drop nodes that expired; read again those whose version is not the one applied."""
        raw_members = await cast("Awaitable[set[bytes]]", self.redis.smembers(self.keys.nodes))
        members = {m.decode(errors="replace") for m in raw_members}
        names = sorted((members | self.view.nodes()) - {self.keys.node})
        if not names:
            return
        versions = await self.redis.mget([self.keys.version(n) for n in names])
        dead = []
        for node, raw in zip(names, versions, strict=True):
            version = parse_version(raw)
            if version is None:
                self.view.drop_node(node)
                self.seen.pop(node, None)
                dead.append(node)
            elif self.seen.get(node) != version:
                await self._read(node)
        if dead:
            await cast("Awaitable[int]", self.redis.srem(self.keys.nodes, *dead))

    async def _read(self, node: str) -> None:
        self.reading[node] = []
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.version(node))
                pipe.hgetall(self.keys.conns(node))
                raw_version, raw_entries = await pipe.execute()
        except BaseException:
            for message in self.reading.pop(node):
                self._apply(node, message)
            raise
        heard = self.reading.pop(node)
        version = parse_version(raw_version)
        if version is None:
            self.view.drop_node(node)
            self.seen.pop(node, None)
            return
        self.view.replace_node(node, decode_entries(raw_entries))
        self.seen[node] = version
        for message in heard:  # what changed while the hash was being read
            later = parse_version(message.get("v"))
            if later is None or later[0] != version[0] or later[1] > version[1]:
                self._apply(node, message)


async def _woken(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until `event` is set or `timeout_s` passed, and clear it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    event.clear()
