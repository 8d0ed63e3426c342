"""createAlert through AlertService on one store, in process: alerts committed per second and
the write batches they took, with --concurrency callers each creating alerts one after another.

    python scripts/bench_store_backends.py                                 # a fresh SQLite file
    python scripts/bench_store_backends.py --database-url postgresql://postgres@127.0.0.1/alertwire_bench

The PostgreSQL database should be empty (its alerts and events are left for inspection). No
sockets, RPC or subscribers: this measures the store and the service above it, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.alerts import CreateAlertInput
from services.alerts import AlertService
from services.config import DEFAULT_TARGETS, DomainConfig, postgres_url
from services.container import make_store


async def run(url: str | None, alerts: int, concurrency: int, hospitals: int) -> str:
    with tempfile.TemporaryDirectory(prefix="alertwire-bench-") as tmp:
        if url is None:
            config = DomainConfig(database_path=f"{tmp}/bench.db")
        elif postgres_url(url) is not None:
            config = DomainConfig(postgres_url=url)
        else:
            raise SystemExit("--database-url must be postgresql://...")
        store = make_store(config)
        await store.open()
        try:
            service = AlertService(store, dict(DEFAULT_TARGETS))
            inputs = [
                CreateAlertInput(
                    hospital_id=f"h{n % hospitals}", type="call_button", priority="high", title="b"
                )
                for n in range(alerts)
            ]

            async def caller(first: int) -> None:
                for data in inputs[first::concurrency]:
                    await service.create(data, "bench")

            started = time.perf_counter()
            await asyncio.gather(*(caller(i) for i in range(concurrency)))
            elapsed = time.perf_counter() - started
            batches = store.commits
        finally:
            await store.close()
    kind = "postgresql" if url else "sqlite"
    return (
        f"{kind}: {alerts} alerts, {concurrency} callers, {hospitals} hospital(s): "
        f"{alerts / elapsed:,.0f} alerts/s, {batches} batches ({alerts / batches:.1f} per batch)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=None, help="postgresql://... (default: SQLite)")
    p.add_argument("--alerts", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--hospitals", type=int, default=1)
    args = p.parse_args()
    print(asyncio.run(run(args.database_url, args.alerts, args.concurrency, args.hospitals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
