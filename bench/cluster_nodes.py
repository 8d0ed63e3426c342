"""N Alertwire nodes of one cluster for a benchmark: a PostgreSQL database created for the run
(dropped afterwards), a Redis key prefix of the run's own (its keys deleted afterwards; the
server is never flushed) and one JWT secret shared by the nodes. Used by
scripts/bench_connections.py --nodes and scripts/bench_cluster_writes.py."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from bench.fanout import Options, Server, start_server
from bench.progress import Progress

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Cluster:
    nodes: list[Server]
    secret: str  # every node's JWT_SECRET
    database: str
    prefix: str  # ALERTWIRE_CLUSTER


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=10.0)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.contextmanager
def cluster_nodes(
    opts: Options,
    count: int,
    progress: Progress,
    admin_url: str = DEFAULT_POSTGRES,
    redis_url: str | None = DEFAULT_REDIS,
) -> Iterator[Cluster]:
    """`count` nodes started one after another (the first migrates, the others find it done);
    all stopped, the database dropped and the Redis keys deleted on the way out."""
    database = f"alertwire_bench_{secrets.token_hex(4)}"
    prefix = f"awbench-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(48)
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{database}"'))
    nodes: list[Server] = []
    try:
        for n in range(count):
            env = {
                **opts.server_env,
                "DATABASE_URL": url,
                "NODE_ID": f"bench-{n}",
                "JWT_SECRET": secret,
                "ALERTWIRE_CLUSTER": prefix,
            }
            if redis_url:
                env["REDIS_URL"] = redis_url
            nodes.append(start_server(replace(opts, server_env=env), progress))
        yield Cluster(nodes, secret, database, prefix)
    finally:
        for node in nodes:
            node.stop()
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if redis_url:
            asyncio.run(_delete_prefix(redis_url, prefix))
