"""Presence cost, in process: how many presence changes per second one node computes and hands
to its subscribers, and the memory presence costs per connection.

    .venv/bin/python scripts/bench_presence.py [--staff 2000] [--hospitals 10]
        [--subscribers 200] [--changes 20000]

The set-up is the issue's: `--staff` users connected (one connection each, spread over
`--hospitals`; one in ten also holds a second hospital), and `--subscribers` presence
subscriptions spread over the hospitals, each read by a task as a WebSocket session would.
A change is a status set by `presence.set` (through the cluster broadcast, in memory here):
each one is computed once and pushed to the subscribers of the user's hospitals.
"Changes/s" counts changes until every subscriber has read every event they caused. Memory
is what tracemalloc sees allocated by connecting the staff (the cluster's connection view
and the presence state), divided by the connections. No sockets: the WebSocket framing cost
of the events is the fan-out's (bench/README), not presence's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import tracemalloc

from rpc.cluster_memory import InMemoryClusterState
from rpc.connections import ConnectionRegistry
from rpc.context import Principal
from schemas.presence import PresenceStatus
from services.presence import PresenceService


def staff_of(count: int, hospitals: int) -> list[Principal]:
    people = []
    for n in range(count):
        home = {f"h{n % hospitals}"}
        if n % 10 == 0:
            home.add(f"h{(n + 1) % hospitals}")
        role = "charge_nurse" if n % 20 == 0 else "nurse"
        people.append(Principal(f"user-{n}", role, frozenset(home), time.time() + 86_400, None))
    return people


async def run(staff: int, hospitals: int, subscribers: int, changes: int) -> dict[str, float]:
    cluster = InMemoryClusterState("bench")
    registry = ConnectionRegistry(cluster)
    presence = PresenceService(cluster, time.time)
    people = staff_of(staff, hospitals)

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n, person in enumerate(people):
        registry.add(f"c{n}", person)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))

    received = [0]
    target = [subscribers]
    reached = asyncio.Event()

    async def read(hospital: str) -> None:
        async for _event in presence.stream(hospital):
            received[0] += 1
            if received[0] >= target[0]:
                reached.set()

    readers = [asyncio.create_task(read(f"h{n % hospitals}")) for n in range(subscribers)]
    await reached.wait()  # every snapshot read

    # each change reaches the subscribers of each hospital of the user
    per_hospital = subscribers / hospitals
    expected = received[0]
    statuses: tuple[PresenceStatus, ...] = ("busy", "online")
    start = time.perf_counter()
    for n in range(changes):
        person = people[n % staff]
        await presence.set(person.sub, statuses[(n // staff) % 2], None)
        expected += int(per_hospital * len(person.hospitals))
        if n % 500 == 499:
            await asyncio.sleep(0)  # let the readers keep up, as the loop would
    target[0] = expected
    reached.clear()
    if received[0] < expected:
        await asyncio.wait_for(reached.wait(), 120)
    elapsed = time.perf_counter() - start

    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await presence.stop()
    return {
        "staff": staff,
        "hospitals": hospitals,
        "subscribers": subscribers,
        "changes": changes,
        "seconds": round(elapsed, 3),
        "changes_per_s": round(changes / elapsed),
        "events_delivered_per_s": round((expected - subscribers) / elapsed),
        "bytes_per_connection": round(grown / staff),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=2000)
    parser.add_argument("--hospitals", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(run(args.staff, args.hospitals, args.subscribers, args.changes))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
