"""Cross-node delivery on PostgreSQL: every node delivers every event of a hospital committed
through any node, in event-id order, exactly once, even an event whose node died right after
committing it.

Why LISTEN/NOTIFY, issued inside the commit. `alertwire_commit` (postgres_schema.py, migration
2) ends with one `pg_notify` per event of the batch, on a channel of the schema's own
(`alertwire_channel()`). PostgreSQL delivers a transaction's notifications when, and only if,
it commits, atomically with it, in commit order, to every connection listening at that moment.
So the wake-up cannot be lost between the commit and the node's next step: a node killed the
instant after its commit returned has already told everyone. A bus written after the commit
(a Redis stream, a second statement) has exactly that window, where a dead node leaves events
that are committed but that nobody hears of until some other read happens to find them.

The payload is the event itself when it fits under PostgreSQL's 8,000-byte limit
(seq, hospital, alert, wire payload; tab-separated: hospital and alert ids cannot contain a
tab), so the common case costs no read; otherwise just its position, and the receiver reads it.

What the bus carries is a hint; the log decides (DESIGN: "the source of truth decides, the bus
only wakes"). Notifications go through the Sequencer (services/sequencer.py), with this
node's own commits, which arrive both ways: a position already published is dropped, the next
one is published from the payload, and one past a gap makes the node read what is missing
from the log first. A notification is lost only while this node is not listening (its
connection dropped, the database restarted); for that, and as a backstop for anything else,
every CHECK_INTERVAL_S the high-water check compares each loaded topic's newest position with
the log's counters and fetches the difference, so a lost hint costs at most about a second,
never an event. The check also runs at once whenever the LISTEN connection is (re)opened,
after LISTEN is in place, so nothing committed in between falls through.

One dedicated connection per node listens (asyncpg `add_listener`), outside the store's pool,
and reconnects by itself with back-off when it drops; a periodic probe notices a connection
that died silently. While it is down /health says `"bus": "degraded"` and delivery from other
nodes falls back to the high-water check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from services.postgres_pool import CONNECT_TIMEOUT_S
from services.sequencer import Sequencer
from services.store import StoredEvent
from services.store_postgres import PostgresAlertStore
from services.subscriptions import AlertSubscriptionService

log = logging.getLogger("alertwire.bus")

CHECK_INTERVAL_S = 1.0
PROBE_INTERVAL_S = 5.0  # how often an idle LISTEN connection is asked whether it is alive
PROBE_TIMEOUT_S = 2.0
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0

_Opened = tuple[asyncpg.Connection, asyncio.Event]


def parse_notice(payload: str) -> StoredEvent | tuple[str, int] | None:
    """A notification's event, or (hospital, position) when it carries only where it is;
    None for anything else."""
    parts = payload.split("\t", 3)
    if not (parts[0].isascii() and parts[0].isdigit()):
        return None
    seq = int(parts[0])
    if len(parts) == 4:
        return StoredEvent(seq, parts[1], parts[2], parts[3].encode())
    if len(parts) == 2:
        return parts[1], seq
    return None


class PostgresEventBus:
    def __init__(self, store: PostgresAlertStore, subscriptions: AlertSubscriptionService) -> None:
        self.url = store.url
        self.sequencer = Sequencer(subscriptions, store)
        self.committed = self.sequencer.offer
        self._conn: asyncpg.Connection | None = None
        self._check_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The database's process for the LISTEN connection (pg_stat_activity.pid)."""
        return self._conn.get_server_pid() if self.listening and self._conn else None

    def health(self) -> dict[str, str]:
        return {"bus": "ok" if self.listening else "degraded"}

    async def start(self) -> None:
        """Listen, then keep listening and checking. The first connection is made before this
        returns; a database that refuses it leaves the bus degraded and retrying, not the
        server down."""
        opened: _Opened | None = None
        try:
            opened = await self._open()
        except Exception as exc:
            log.warning("the LISTEN connection failed (%s); retrying", type(exc).__name__)
        self._tasks = [
            asyncio.create_task(self._listen_forever(opened), name="bus-listen"),
            asyncio.create_task(self._check_forever(), name="bus-high-water"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._conn is not None:  # opened, but its task was cancelled before holding it
            self._conn.terminate()
            self._conn = None
        await self.sequencer.stop()

    # --- listening ------------------------------------------------------------------------

    async def _listen_forever(self, opened: _Opened | None) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                if opened is None:
                    opened = await self._open()
                await self._hold(*opened)
                delay = RECONNECT_MIN_S  # it was up: the next attempt comes soon
                log.warning("the LISTEN connection was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, timed out: keep trying
                log.warning("the LISTEN connection failed (%s); retrying", type(exc).__name__)
            opened = None
            await asyncio.sleep(delay)  # back-off between attempts
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _open(self) -> _Opened:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.url,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"application_name": "alertwire"},
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            channel = await conn.fetchval("SELECT alertwire_channel()")
            await conn.add_listener(channel, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._check_now.set()  # after LISTEN: what was committed while no one listened
        return conn, lost

    async def _hold(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Until the connection is lost (closed by the server, or silent to a probe)."""
        try:
            while True:
                try:
                    await asyncio.wait_for(lost.wait(), PROBE_INTERVAL_S)
                    return
                except TimeoutError:  # quiet for a while: is it still there?
                    await asyncio.wait_for(conn.execute("SELECT 1"), PROBE_TIMEOUT_S)
        finally:
            self._conn = None
            conn.terminate()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        notice = parse_notice(payload) if isinstance(payload, str) else None
        if isinstance(notice, StoredEvent):
            self.sequencer.offer((notice,))
        elif notice is not None:
            self.sequencer.announce(*notice)
        else:  # not ours to read (the payload is not logged: it holds alert text)
            log.warning("an unreadable notification on the events channel; checking the log")
            self._check_now.set()

    # --- the high-water check -------------------------------------------------------------

    async def _check_forever(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):  # a timer: the check runs either way
                await asyncio.wait_for(self._check_now.wait(), CHECK_INTERVAL_S)
            self._check_now.clear()
            try:
                await self.sequencer.catch_up()
            except Exception as exc:  # the database is away: the next round tries again
                if not failing:
                    log.warning("the high-water check failed (%s)", type(exc).__name__)
                failing = True
            else:
                failing = False
