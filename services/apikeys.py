"""API keys for integrations (CONTRACT 9): created by an admin for one hospital and a set of
scopes, shown once, kept as a hash, checked on every inbound webhook.

- The key is `awk_` + 32 random bytes (43 URL-safe characters). Only its SHA-256 is stored: a
  slow password hash protects guessable secrets, and 256 random bits are not guessable, so a
  fast hash loses nothing and keeps each check cheap. Its first characters (`prefix`) are kept
  to list it and to find candidates, whose hashes are then compared in constant time
  (`hmac.compare_digest`).
- A check reads the store at most once a second per key (a small cache), so a key revoked on
  any node is refused everywhere within a second even should the broadcast be lost; the
  broadcast (`ApiKeyRevoked` through ClusterState) makes it immediate.
- `lastUsedAt` is written at most once a minute per key per node, off the request's path.
- A key never reaches a log, a metric or an error message: only its id and prefix do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from rpc.cluster import ClusterMessage, ClusterState, ClusterUnavailable
from rpc.errors import ErrorCode, RpcError
from rpc.inbound import InboundKey, Remembered
from services.integration_store import ApiKeyRow, IntegrationStore, RememberedResponse
from services.store import IDEMPOTENCY_TTL_S

log = logging.getLogger("alertwire.apikeys")

KEY_PREFIX = "awk_"
KEY_BYTES = 32
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # shown in lists; 48 bits: candidates are almost always one
SIGNING_PREFIX = "awsig_"
CACHE_S = 1.0  # a key is read from the store again after this long: revocation's backstop
TOUCH_S = 60.0  # lastUsedAt is written at most this often per key
MAX_CACHED = 10_000
MAX_KEY_LENGTH = 200


class ApiKeyRevoked(ClusterMessage):
    """Every node forgets this key at once (apiKeys.revoke)."""

    kind = "apiKeys.revoked"
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


def not_found(what: str) -> RpcError:
    return RpcError(ErrorCode.NOT_FOUND, f"No such {what}")


class ApiKeyService:
    def __init__(
        self,
        store: IntegrationStore,
        cluster: ClusterState | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.clock = clock
        # sha256 of a presented key -> (the key's row or None, when read; monotonic)
        self._cache: OrderedDict[str, tuple[ApiKeyRow | None, float]] = OrderedDict()
        self._revoked: set[str] = set()  # heard revoked on this node: refused even if cached
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        if cluster is not None:
            cluster.on_message(ApiKeyRevoked, self._heard_revoked)

    # --- admin ----------------------------------------------------------------------------

    async def create(
        self, hospital_id: str, name: str, scopes: list[str], signed: bool
    ) -> tuple[ApiKeyRow, str]:
        """The new key's row and the key itself (never stored, never logged)."""
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        row = ApiKeyRow(
            key_id=new_id("key_"),
            hospital_id=hospital_id,
            name=name,
            prefix=key[:PREFIX_LENGTH],
            key_hash=hash_key(key),
            scopes=tuple(dict.fromkeys(scopes)),
            signing_secret=SIGNING_PREFIX + secrets.token_urlsafe(KEY_BYTES) if signed else None,
            created_ts=self.clock(),
        )
        await self.store.add_api_key(row)
        log.info("API key %s created for hospital %s", row.key_id, hospital_id)
        return row, key

    async def of_hospital(self, hospital_id: str) -> list[ApiKeyRow]:
        return await self.store.api_keys(hospital_id)

    async def get(self, key_id: str) -> ApiKeyRow:
        row = await self.store.api_key(key_id)
        if row is None or row.revoked_ts is not None:
            raise not_found("API key")
        return row

    async def revoke(self, key_id: str) -> bool:
        """Durable first (a node that misses the broadcast reads it within CACHE_S), then
        every node drops the key at once."""
        revoked = await self.store.revoke_api_key(key_id, self.clock())
        self._heard_revoked(ApiKeyRevoked(key_id=key_id))
        if self.cluster is not None:
            try:
                await self.cluster.publish(ApiKeyRevoked(key_id=key_id))
            except ClusterUnavailable:
                log.warning("key revocation not broadcast; other nodes refuse it within 1 s")
        log.info("API key %s revoked", key_id)
        return revoked

    def _heard_revoked(self, message: ApiKeyRevoked) -> None:
        self._revoked.add(message.key_id)
        for digest, (row, _) in list(self._cache.items()):
            if row is not None and row.key_id == message.key_id:
                del self._cache[digest]

    # --- inbound (rpc.inbound.InboundGate) ------------------------------------------------

    async def authenticate(self, presented: str) -> InboundKey | None:
        if not presented.startswith(KEY_PREFIX) or len(presented) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(presented)
        row = await self._lookup(presented, digest)
        if row is None or row.key_id in self._revoked:
            return None
        self._touch(row.key_id)
        return InboundKey(
            row.key_id, row.hospital_id, row.name, frozenset(row.scopes), row.signing_secret
        )

    async def _lookup(self, presented: str, digest: str) -> ApiKeyRow | None:
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < CACHE_S:
            return cached[0]
        found: ApiKeyRow | None = None
        for row in await self.store.api_keys_by_prefix(presented[:PREFIX_LENGTH]):
            if hmac.compare_digest(row.key_hash.encode(), digest.encode()):
                found = row
        self._cache[digest] = (found, now)
        self._cache.move_to_end(digest)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return found

    def _touch(self, key_id: str) -> None:
        now = self.clock()
        if now - self._touched.get(key_id, -TOUCH_S) < TOUCH_S:
            return
        self._touched[key_id] = now
        task = asyncio.create_task(self._write_touch(key_id, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, key_id: str, now: float) -> None:
        try:
            await self.store.touch_api_key(key_id, now)
        except Exception:  # bookkeeping only: the request it came with succeeded
            log.warning("could not record the last use of API key %s", key_id)

    async def recall(self, hospital_id: str, key: str) -> Remembered | None:
        found = await self.store.recall_response(hospital_id, key, self._since())
        return None if found is None else Remembered(found.fingerprint, found.status, found.body)

    async def remember(self, hospital_id: str, key: str, response: Remembered) -> Remembered:
        row = RememberedResponse(response.fingerprint, response.status, response.body, self.clock())
        kept = await self.store.remember_response(hospital_id, key, row, self._since())
        return Remembered(kept.fingerprint, kept.status, kept.body)

    def _since(self) -> float:
        return self.clock() - IDEMPOTENCY_TTL_S

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
