"""What the notification sweep costs (services/notification_sweep.py).

On a fresh database (an SQLite file in a temporary directory, or with --database-url a
PostgreSQL database created for the run and dropped afterwards), --alerts alerts are each
assigned and escalated with the fast path disabled (as if the node died after each commit),
plus --noise title updates that no rule reads. Then it measures:
- catch-up: how long a restarted node's sweep takes to write every lost notification;
- idle round: one sweep round with nothing new (what every node pays each second);
- repeat: a sweep over the same changes when the fast path had written them all (a read per
  change, no write).

    python scripts/bench_notification_sweep.py
    python scripts/bench_notification_sweep.py --alerts 2000 --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from rpc.cluster_memory import InMemoryClusterState, MemoryHub  # noqa: E402
from rpc.connections import ConnectionRegistry  # noqa: E402
from rpc.context import Principal  # noqa: E402
from schemas.alerts import CreateAlertInput, UpdateAlertInput  # noqa: E402
from services.config import DomainConfig  # noqa: E402
from services.container import Services  # noqa: E402
from services.notification_cursor import EVERY_HOSPITAL  # noqa: E402


async def open_node(config: DomainConfig) -> Services:
    registry = ConnectionRegistry(InMemoryClusterState("bench", MemoryHub()))
    return await Services.open(config, registry, background=False)


async def write_changes(config: DomainConfig, alerts: int, noise: int, fast_path: bool) -> None:
    node = await open_node(config)
    try:
        for sub, role in (("cn-1", "charge_nurse"), ("cn-2", "charge_nurse"), ("n-1", "nurse")):
            node.heard_call(Principal(sub, role, frozenset({"h1"}), time.time() + 3600, None))
        while node.notifications.pending:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.01)
        if not fast_path:
            node.alerts._committed_listeners.clear()

        async def one(i: int) -> None:
            data = CreateAlertInput(
                hospital_id="h1",
                type="call_button",
                priority="critical",
                title=f"Bed {i}",
                patient_id="p-1",
                location="ward 3",
            )
            alert = await node.alerts.create(data, "device-1")
            await node.alerts.update(UpdateAlertInput(alert_id=alert.id, assigned_to="n-1"), "cn-1")
            for n in range(noise):
                await node.alerts.update(UpdateAlertInput(alert_id=alert.id, title=f"B{n}"), "cn-1")
            await node.alerts.escalate(alert.id, "cn-1", "bench")

        for start in range(0, alerts, 100):
            await asyncio.gather(*(one(i) for i in range(start, min(alerts, start + 100))))
        while node.notifications.pending:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.01)
    finally:
        await node.close()


async def measure(config: DomainConfig, alerts: int, noise: int) -> None:
    await write_changes(config, alerts, noise, fast_path=False)
    node = await open_node(config)
    try:
        start = time.perf_counter()
        handled = await node.notification_sweep.catch_up()
        took = time.perf_counter() - start
        print(
            f"catch-up: {handled} events, {node.notification_sweep.written} notifications "
            f"written in {took:.3f} s ({handled / took:.0f} events/s)"
        )
        rounds = 200
        start = time.perf_counter()
        for _ in range(rounds):
            await node.notification_sweep.run_once()
        print(f"idle round: {(time.perf_counter() - start) / rounds * 1e6:.0f} us")
    finally:
        await node.close()
    await write_changes(config, alerts, noise, fast_path=True)
    node = await open_node(config)
    try:
        # Back over the changes the fast path wrote (the cursor of the run above is rewound).
        await rewind(config)
        start = time.perf_counter()
        handled = await node.notification_sweep.catch_up()
        took = time.perf_counter() - start
        print(
            f"repeat: {handled} events, {node.notification_sweep.written} written, "
            f"{took:.3f} s ({handled / max(took, 1e-9):.0f} events/s)"
        )
    finally:
        await node.close()


async def rewind(config: DomainConfig) -> None:
    if config.postgres_url:
        conn = await asyncpg.connect(config.postgres_url)
        try:
            await conn.execute("UPDATE notification_cursors SET seq = 0")
        finally:
            await conn.close()
        return
    import sqlite3

    db = sqlite3.connect(config.database_path)
    try:
        db.execute("UPDATE notification_cursors SET seq = 0 WHERE name = ?", (EVERY_HOSPITAL,))
        db.commit()
    finally:
        db.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--noise", type=int, default=2, help="title updates per alert")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (admin URL)")
    args = parser.parse_args()
    if args.database_url is None:
        with tempfile.TemporaryDirectory() as work:
            print(f"SQLite, {args.alerts} alerts x (assign, {args.noise} updates, escalate)")
            await measure(DomainConfig(database_path=f"{work}/bench.db"), args.alerts, args.noise)
        return
    name = f"bench_sweep_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{name}"))
        print(f"PostgreSQL, {args.alerts} alerts x (assign, {args.noise} updates, escalate)")
        await measure(DomainConfig(postgres_url=url), args.alerts, args.noise)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
