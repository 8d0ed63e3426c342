"""How fast an admin's revocation takes effect on another node (CONTRACT 11: within 1 s).

Two nodes (in this process) of one cluster: a PostgreSQL database created for the run (on
--database-url's server; dropped afterwards) and Redis (--redis-url, a cluster name of the
run's own). Each round opens --connections WebSockets of one user on node b, lets node a's
view count them, then calls `admin.revokeTokens` on node a over HTTP and measures, from the
moment the call was sent, until every socket on node b is closed (4001) and until node b
refuses the user's token on HTTP.

    python scripts/bench_admin.py                     # 10 rounds x 50 connections
    python scripts/bench_admin.py --rounds 20 --connections 200
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from rpc.auth import AuthConfig, issue_token  # noqa: E402
from server import config as server_config  # noqa: E402
from server.main import Running, start, stop  # noqa: E402

SECRET = secrets.token_hex(32)
DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def mint(sub: str, role: str, age_s: float = 10.0) -> str:
    return issue_token(
        AuthConfig(SECRET),
        sub=sub,
        role=role,
        hospitals=["h1"],
        ttl_seconds=3600,
        now=time.time() - age_s,
    )


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def node(name: str, database_url: str, redis_url: str, cluster: str, work: Path) -> Running:
    env = {
        "WEBSOCKET_PORT": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ALERTWIRE_CLUSTER": cluster,
        "NODE_ID": name,
        "JWT_SECRET": SECRET,
        "ALERTWIRE_DATA_DIR": str(work / name),
        "RATE_LIMIT_PER_10S": "0",
        "MAX_CONNECTIONS_PER_USER": "0",
    }
    return await start(server_config.load(env))


async def one_round(
    http: aiohttp.ClientSession, a: Running, b: Running, n: int, user: str
) -> tuple[float, float]:
    token = mint(user, "nurse")
    sockets = [
        await http.ws_connect(
            f"ws://127.0.0.1:{b.port}/api/trpc", headers={"Authorization": f"Bearer {token}"}
        )
        for _ in range(n)
    ]
    while a.state.registry.connections_of(user) < n:  # noqa: ASYNC110 - node a's view
        await asyncio.sleep(0.005)
    closes = [asyncio.ensure_future(ws.receive()) for ws in sockets]
    start_s = time.perf_counter()
    async with http.post(
        f"http://127.0.0.1:{a.port}/api/trpc/admin.revokeTokens",
        json={"sub": user},
        headers={"Authorization": f"Bearer {mint('admin-1', 'admin')}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    refused_s = 0.0
    while True:
        async with http.get(
            f"http://127.0.0.1:{b.port}/api/trpc/system.whoami",
            headers={"Authorization": f"Bearer {token}"},
        ) as probe:
            if probe.status == 401:
                refused_s = time.perf_counter() - start_s
                break
        await asyncio.sleep(0.002)
    await asyncio.wait_for(asyncio.gather(*closes), 10)
    closed_s = time.perf_counter() - start_s
    for ws in sockets:
        assert ws.close_code == 4001, ws.close_code
        await ws.close()
    return closed_s, refused_s


async def main(args: argparse.Namespace) -> None:
    name = f"alertwire_bench_admin_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    cluster = f"bench-admin-{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = with_database(args.database_url, name)
            a = await node("node-a", url, args.redis_url, cluster, Path(tmp))
            b = await node("node-b", url, args.redis_url, cluster, Path(tmp))
            closed, refused = [], []
            try:
                async with aiohttp.ClientSession() as http:
                    for r in range(args.rounds):
                        c, f = await one_round(http, a, b, args.connections, f"user-{r}")
                        closed.append(c * 1000)
                        refused.append(f * 1000)
            finally:
                await stop(b)
                await stop(a)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    for what, values in (("all sockets on node b closed", closed), ("node b refuses", refused)):
        print(
            f"{what}: median {statistics.median(values):.1f} ms, "
            f"max {max(values):.1f} ms over {args.rounds} rounds of {args.connections} sockets"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--database-url", default=DEFAULT_ADMIN)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    asyncio.run(main(parser.parse_args()))
